"""Command-line interface: ``steadypay`` (Typer), one module per command group.

- :mod:`~steadypay.cli.main` — the entry point (``app``); commands import their module lazily.
- :mod:`~steadypay.cli.up` — ``steadypay up``: database, migrations, every service supervised.
- :mod:`~steadypay.cli.supervisor` — the small process supervisor behind ``steadypay up``.
- :mod:`~steadypay.cli.database` — which database a command talks to (URL, the Patroni cluster
  of the data directory, or the embedded node).
- :mod:`~steadypay.cli.cluster` — ``steadypay cluster status|switchover|failover`` and the
  ``up --db-nodes`` check; :mod:`~steadypay.cli.ha` — their bodies, and the cluster under
  ``up --db-nodes N`` (started with progress, watched, stopped).
- :mod:`~steadypay.cli.fraud` — ``steadypay fraud-service``.
- :mod:`~steadypay.cli.notifications` — ``steadypay notifications serve``.
- :mod:`~steadypay.cli.outbox` — ``steadypay outbox relay``.
- :mod:`~steadypay.cli.monitor` — ``steadypay monitor``.
- :mod:`~steadypay.cli.ledger` — ``steadypay ledger check``.
- :mod:`~steadypay.cli.demo` — ``steadypay demo``: drive a running steadypay over HTTP.
- :mod:`~steadypay.cli.chaos` — ``steadypay chaos bank``: the workload, then the checker.
- :mod:`~steadypay.cli.bench_report` — human tables for benchmark figures.

The top of the layers: nothing imports this package but ``steadypay.__main__`` (and tests), and
nothing is imported here, so that ``steadypay --help`` stays fast.
"""

__all__: list[str] = []
