"""Bearer secrets as steadypay stores and compares them: SHA-256, compared in constant time.

One definition for every layer: the users' and operators' keys (``steadypay.identity``), the
services' internal keys and the metrics token (``steadypay.http.service_auth``) and the rate
limits' known-good keys (``steadypay.http.ratelimit``). A fast hash is the right tool for
high-entropy machine-generated tokens (GitHub and Stripe do the same); slow password hashes
protect low-entropy human passwords, which these are not.
"""

from __future__ import annotations

import hashlib
import hmac


def digest(secret: str) -> bytes:
    """The stored form of a secret: its SHA-256 (32 bytes)."""
    return hashlib.sha256(secret.encode()).digest()


def same_digest(given: bytes, expected: bytes) -> bool:
    """Constant-time comparison of two digests."""
    return hmac.compare_digest(given, expected)


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets of any length."""
    return hmac.compare_digest(digest(given), digest(expected))
