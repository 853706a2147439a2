"""Benchmarks that print figures (`steadypay bench ...`); timing goals live here, not in tests.

- :mod:`~steadypay.bench.payments` — ``steadypay bench payments``: the write path against
  PostgreSQL's own TPC-B, on one server and one machine.
- :mod:`~steadypay.bench.loadgen` — its load generator: K processes of aiohttp clients.
- :mod:`~steadypay.bench.pgbench` — ``pgbench`` on the bench's server: the ceiling.
- :mod:`~steadypay.bench.procstats` — CPU seconds and peak memory of process trees.
- :mod:`~steadypay.bench.resilience` — ``steadypay bench resilience``: what the resilience
  toolkit costs and what it saves.

An entrypoint harness: nothing is re-exported here. The CLI imports ``run`` (and
``BenchOptions``) from the module of each benchmark.
"""

__all__: list[str] = []
