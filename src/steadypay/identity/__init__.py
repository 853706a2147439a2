"""Users, their API keys, and who is calling (principals).

- :mod:`~steadypay.identity.domain` — :class:`Principal`, :class:`User` and API keys (256-bit
  random secrets, shown once, stored as SHA-256). Plain Python, no I/O.
- :mod:`~steadypay.identity.service` — :class:`Identity`: user use cases and authentication of
  bearer keys.

Offered to other packages: the names below.
"""

from steadypay.identity.domain import (
    ADMIN_PRINCIPAL,
    API_KEY_PREFIX,
    Principal,
    User,
    hash_api_key,
    new_api_key,
    same_secret,
)
from steadypay.identity.service import Identity

__all__ = [
    "ADMIN_PRINCIPAL",
    "API_KEY_PREFIX",
    "Identity",
    "Principal",
    "User",
    "hash_api_key",
    "new_api_key",
    "same_secret",
]
