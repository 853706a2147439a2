"""Principals and API keys. Keys are 256-bit random secrets, shown once and stored as SHA-256.

A fast hash is the right tool for high-entropy machine-generated tokens (GitHub and Stripe do the
same); slow password hashes protect low-entropy human passwords, which these are not.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from steadypay.keys import digest

API_KEY_PREFIX = "sp_"
ADMIN_KEY_PREFIX = "sp_op_"
ADMIN = "admin"
ENV_ADMIN_ID = "env"
"""The id of the key in ``STEADYPAY_ADMIN_KEY`` (the break-glass key): ``admin:env``."""
ADMIN_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
ADMIN_KEY_ID_PATTERN = re.compile(r"^ak_[0-9a-f]{12}$")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an operator (the admin key of the environment, or a named admin key by
    its id), or a user (by id)."""

    user_id: UUID | None
    admin_key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.user_id is None

    @property
    def actor(self) -> str:
        """Who, in the audit trail: ``admin:env``, ``admin:ak_…`` or ``user:<id>``."""
        if self.user_id is not None:
            return f"user:{self.user_id}"
        return f"{ADMIN}:{self.admin_key_id or ENV_ADMIN_ID}"

    @property
    def scope(self) -> str:
        """The namespace of this principal's idempotency keys."""
        return ADMIN if self.user_id is None else f"user:{self.user_id}"

    def owns(self, user_id: UUID | None) -> bool:
        return self.user_id is not None and self.user_id == user_id


ADMIN_PRINCIPAL = Principal(user_id=None)


def operator(key_id: str) -> Principal:
    return Principal(user_id=None, admin_key_id=key_id)


@dataclass(frozen=True, slots=True)
class AdminKey:
    """A named operator key (never its secret)."""

    id: str
    name: str
    created_at: datetime
    created_by: str
    rotated_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None

    def to_json(self) -> dict[str, Any]:
        def at(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "name": self.name,
            "actor": f"{ADMIN}:{self.id}",
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "rotated_at": at(self.rotated_at),
            "revoked_at": at(self.revoked_at),
            "revoked_by": self.revoked_by,
        }


@dataclass(frozen=True, slots=True)
class User:
    id: UUID
    name: str
    email: str
    created_at: datetime


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def new_admin_key() -> str:
    return ADMIN_KEY_PREFIX + secrets.token_urlsafe(32)


def new_admin_key_id() -> str:
    return "ak_" + secrets.token_hex(6)


hash_api_key = digest
"""A key's stored form (:func:`steadypay.keys.digest`)."""
