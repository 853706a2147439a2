"""Idempotency keys: what a claim is, what is stored, and how requests are fingerprinted."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from steadypay.errors import IdempotencyKeyRequired

MAX_KEY_LENGTH = 255


def validate_key(raw: str | None) -> str:
    """The Idempotency-Key header value, or IdempotencyKeyRequired (400) if absent or invalid."""
    if raw is None or not 1 <= len(raw) <= MAX_KEY_LENGTH:
        raise IdempotencyKeyRequired(param="Idempotency-Key")
    if not raw.isprintable() or not raw.isascii():
        raise IdempotencyKeyRequired(
            "Idempotency-Key must be 1-255 printable ASCII characters", param="Idempotency-Key"
        )
    return raw


def fingerprint(operation: str, parameters: Mapping[str, Any]) -> bytes:
    """A digest of the request's meaning: the operation and its *normalised* parameters.

    Normalised means amounts in minor units, ids as canonical strings: "10.0" and "10.00" are
    the same request, and so are bodies that differ only in key order or whitespace.
    """
    canonical = json.dumps(
        {"op": operation, "params": parameters}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).digest()


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    principal: str
    key: str
    fingerprint: bytes


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response exactly as first sent: status and the JSON body text."""

    status: int
    body: str
