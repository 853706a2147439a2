"""The health monitor (``steadypay monitor``): rounds of checks, a decision state machine with
hysteresis, a leader lease so only one monitor acts, and a pluggable failover action.

- :mod:`.domain`     results, the decision state machine (pure, no I/O)
- :mod:`.checks`     API health, database, external dependencies; running a round
- :mod:`.canary`     the synthetic payment: a tiny transfer between two canary wallets and back
- :mod:`.lease`      the leader lease (a PostgreSQL session advisory lock)
- :mod:`.actions`    what a failover does: a command, a webhook, or only a log line
- :mod:`.repository` monitor.rounds, monitor.failovers, monitor.canary
- :mod:`.service`    the loop that ties them together
- :mod:`.metrics`    its Prometheus metrics

See docs/monitor.md.
"""
