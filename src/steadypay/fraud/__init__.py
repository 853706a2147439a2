"""The fraud service: its own process that scores a transfer before the ledger moves money.

- :mod:`~steadypay.fraud.domain` — what is checked (:class:`Check`), what history says about
  it (:class:`Facts`) and the answer (:class:`Verdict`); plain Python.
- :mod:`~steadypay.fraud.rules` — :class:`FraudRules` (configuration) and the pure
  ``evaluate(check, facts, rules) -> Verdict``.
- :mod:`~steadypay.fraud.velocity` — the history store protocol and the Redis-then-PostgreSQL
  fallback; :mod:`~steadypay.fraud.redis_velocity` and :mod:`~steadypay.fraud.repository` are
  its two implementations.
- :mod:`~steadypay.fraud.service` — the use case: record the check, evaluate, replay repeats.
- :mod:`~steadypay.fraud.app` — the ASGI app (``POST /check-fraud``, health, deadlines).
"""
