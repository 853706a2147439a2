"""The chaos harness: a whole steadypay started for experiments, the faults thrown at it from
outside, the workload driven through it and the checker of what became of the money. (Faults
injected inside the services are :mod:`steadypay.faults`.)

- :mod:`~steadypay.chaos.proxy` — a TCP fault proxy in the manner of Toxiproxy (``FaultProxy``).
- :mod:`~steadypay.chaos.environment` — a whole steadypay started for chaos experiments.
- :mod:`~steadypay.chaos.bank` — the bank workload: an impatient, retrying client over HTTP.
- :mod:`~steadypay.chaos.checker` — the money-safety checker of a bank run and the ledger.
- :mod:`~steadypay.chaos.provider` — probes and actions for Chaos Toolkit experiments.
- :mod:`~steadypay.chaos.suite` — ``steadypay chaos run`` / ``suite``: the experiments
  (``experiments/*.json``), each under the bank workload.

An entrypoint harness: nothing is re-exported here, so that ``steadypay`` commands import only
the module they run. Import from the modules (``steadypay.chaos.bank.BankOptions``, ...).
"""

__all__: list[str] = []
