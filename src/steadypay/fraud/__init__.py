"""The fraud service: its own process that scores a transfer before the ledger moves money.

- :mod:`~steadypay.fraud.domain` — what is checked (:class:`Check`), what history says about
  it (:class:`Facts`) and the answer (:class:`Verdict`); plain Python.
- :mod:`~steadypay.fraud.rules` — the pure ``evaluate(check, facts, rules) -> Verdict``; its
  configuration, :class:`FraudRules`, is defined in :mod:`steadypay.config.fraud`.
- :mod:`~steadypay.fraud.velocity` — the history store protocol and the Redis-then-PostgreSQL
  fallback; :mod:`~steadypay.fraud.redis_velocity` and :mod:`~steadypay.fraud.repository` are
  its two implementations.
- :mod:`~steadypay.fraud.service` — the use case: record the check, evaluate, replay repeats.
- :mod:`~steadypay.fraud.routes` — ``POST /check-fraud`` (app: :mod:`steadypay.bootstrap.fraud`).
- :mod:`~steadypay.fraud.schemas` — the request and response shapes of ``POST /check-fraud``.
- :mod:`~steadypay.fraud.health` — the service's readiness (PostgreSQL, pool, Redis, store).

Offered to other packages (its composition root, :mod:`steadypay.bootstrap.fraud`, and tests):
the names below. The stores' encodings and lock ids (``KEY_PREFIX``, ``to_ms``, ``from_ms``,
``parse_facts`` in :mod:`~steadypay.fraud.redis_velocity`; ``FRAUD_LOCK_CLASS``,
``sender_lock_key`` in :mod:`~steadypay.fraud.repository`) stay private to their modules.
"""

from steadypay.fraud.domain import Check, Facts, Verdict, WallClock, utc_now
from steadypay.fraud.health import fraud_readiness
from steadypay.fraud.repository import purge_forever, purge_once, require_schema
from steadypay.fraud.routes import DEFAULT_CHECK_TIMEOUT_S, FraudRuntime, fraud_router
from steadypay.fraud.rules import AmountBand, FraudRules, VelocityRule, evaluate, window_label
from steadypay.fraud.service import FraudService, build_store, retention

__all__ = [
    "DEFAULT_CHECK_TIMEOUT_S",
    "AmountBand",
    "Check",
    "Facts",
    "FraudRules",
    "FraudRuntime",
    "FraudService",
    "VelocityRule",
    "Verdict",
    "WallClock",
    "build_store",
    "evaluate",
    "fraud_readiness",
    "fraud_router",
    "purge_forever",
    "purge_once",
    "require_schema",
    "retention",
    "utc_now",
    "window_label",
]
