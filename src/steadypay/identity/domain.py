"""Principals and API keys. Keys are 256-bit random secrets, shown once and stored as SHA-256.

A fast hash is the right tool for high-entropy machine-generated tokens (GitHub and Stripe do the
same); slow password hashes protect low-entropy human passwords, which these are not.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

API_KEY_PREFIX = "sp_"
ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the admin, or a user (by id)."""

    user_id: UUID | None

    @property
    def is_admin(self) -> bool:
        return self.user_id is None

    @property
    def scope(self) -> str:
        """The namespace of this principal's idempotency keys."""
        return ADMIN if self.user_id is None else f"user:{self.user_id}"

    def owns(self, user_id: UUID | None) -> bool:
        return self.user_id is not None and self.user_id == user_id


ADMIN_PRINCIPAL = Principal(user_id=None)


@dataclass(frozen=True, slots=True)
class User:
    id: UUID
    name: str
    email: str
    created_at: datetime


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets of any length."""
    return hmac.compare_digest(hash_api_key(given), hash_api_key(expected))
