"""Stripe-style idempotency keys: the first response is stored with its effect and replayed.

- :mod:`~steadypay.idempotency.domain` — what a claim is (:class:`IdempotencyClaim`), what is
  stored (:class:`StoredResponse`), key validation and request fingerprints. Plain Python.
- :mod:`~steadypay.idempotency.repository` — the SQL of claims, run inside the caller's (the
  ledger's) transaction; for the ledger only.
- :mod:`~steadypay.idempotency.service` — the background purge of expired keys.

Offered to other packages: the names below.
"""

from steadypay.idempotency.domain import (
    IdempotencyClaim,
    StoredResponse,
    fingerprint,
    validate_key,
)
from steadypay.idempotency.service import purge_forever, purge_once

__all__ = [
    "IdempotencyClaim",
    "StoredResponse",
    "fingerprint",
    "purge_forever",
    "purge_once",
    "validate_key",
]
