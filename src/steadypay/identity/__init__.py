"""Users, their API keys, and who is calling (principals).

- :mod:`~steadypay.identity.domain` — :class:`Principal`, :class:`User` and API keys (256-bit
  random secrets, shown once, stored as SHA-256). Plain Python, no I/O.
- :mod:`~steadypay.identity.service` — :class:`Identity`: user and operator-key use cases and
  authentication of bearer keys.
- :mod:`~steadypay.identity.audit` — the append-only audit trail of admin actions.

Offered to other packages: the names below.
"""

from steadypay.identity.audit import Audit, AuditEntry
from steadypay.identity.domain import (
    ADMIN_PRINCIPAL,
    API_KEY_PREFIX,
    Principal,
    User,
    hash_api_key,
    new_api_key,
)
from steadypay.identity.service import Identity, OperatorKeys

__all__ = [
    "ADMIN_PRINCIPAL",
    "API_KEY_PREFIX",
    "Audit",
    "AuditEntry",
    "Identity",
    "OperatorKeys",
    "Principal",
    "User",
    "hash_api_key",
    "new_api_key",
]
