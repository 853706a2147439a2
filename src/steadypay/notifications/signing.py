"""Webhook signatures: how steadypay signs a delivery, and how a receiver checks one.

Every webhook request carries::

    Steadypay-Event-Id: 6f1c...            (the event id: dedupe on it, deliveries repeat)
    Steadypay-Signature: t=1764000000,v1=5257a8...

``v1`` is the lower-case hex HMAC-SHA256, keyed with the endpoint's secret (``whsec_...``, shown
once when the endpoint was created or its secret rotated), of the string ``"<t>.<raw body>"``:
the timestamp, a dot, and the request body exactly as received, byte for byte. After a secret
rotation, for a while (24 hours by default) each request carries two ``v1=`` values, the new
secret's first, so a receiver may switch to the new secret whenever it likes within that time.

To verify, in a receiver written in Python::

    from steadypay.notifications.signing import SignatureError, verify

    body = await request.body()                      # the raw bytes, before any JSON parsing
    try:
        verify(body, request.headers["Steadypay-Signature"], secret)
    except (KeyError, SignatureError):
        return Response(status_code=400)             # not from steadypay, or replayed later
    event = json.loads(body)

In another language: split the header on ``,``; take ``t`` and every ``v1``; compute
HMAC-SHA256(secret, f"{t}.{body}") as hex; accept if it equals any ``v1`` under a constant-time
comparison *and* ``t`` is within a few minutes of your clock (which refuses replays of old
requests). Ignore keys you don't know (a future ``v2``). Answer 2xx quickly; anything else, or
no answer within 5 seconds, is retried with backoff for up to 72 hours.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Sequence

SIGNATURE_HEADER = "Steadypay-Signature"
EVENT_ID_HEADER = "Steadypay-Event-Id"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300
_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DIGITS = re.compile(r"^[0-9]{1,12}$")


class SignatureError(ValueError):
    """The signature header is malformed, matches no signature of the body, or is too old or
    too far in the future. For webhook *receivers*; steadypay itself never raises it to a
    caller of its API."""


def signature(body: bytes, secret: str, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` keyed with ``secret``."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """The ``Steadypay-Signature`` value: ``t=<timestamp>`` then one ``v1=`` per secret, in the
    order given (the newest secret first)."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    if timestamp < 0:
        raise ValueError("timestamp must be unix seconds")
    parts = [f"t={timestamp}"]
    parts.extend(f"{SCHEME}={signature(body, secret, timestamp)}" for secret in secrets)
    return ",".join(parts)


def parse(header: str) -> tuple[int, list[str]]:
    """(timestamp, v1 signatures) of a header; SignatureError if it is malformed."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key:
            raise SignatureError("malformed signature header: expected key=value pairs")
        if key == "t":
            if timestamp is not None or not _DIGITS.match(value):
                raise SignatureError("malformed signature header: bad or repeated t")
            timestamp = int(value)
        elif key == SCHEME:
            if not _HEX_SHA256.match(value):
                raise SignatureError("malformed signature header: v1 is not a hex SHA-256")
            signatures.append(value)
        # other keys (a future scheme) are ignored
    if timestamp is None:
        raise SignatureError("malformed signature header: no timestamp (t=)")
    if not signatures:
        raise SignatureError("no v1 signature in the header")
    return timestamp, signatures


def verify(
    body: bytes,
    header: str,
    secret: str,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: int | None = None,
) -> None:
    """Return if ``header`` holds a valid ``v1`` signature of ``body`` under ``secret`` made
    within ``tolerance_s`` of ``now`` (default: the system clock); else raise SignatureError."""
    timestamp, signatures = parse(header)
    expected = signature(body, secret, timestamp).encode("ascii")
    matched = False
    for candidate in signatures:  # compare against every one: no early exit on a match
        matched |= hmac.compare_digest(expected, candidate.encode("ascii"))
    if not matched:
        raise SignatureError("no signature matches the body and secret")
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError(
            f"signature timestamp is {current - timestamp:+d}s from now (tolerance {tolerance_s}s)"
        )
