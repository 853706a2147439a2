"""What the fraud service checks, what it knows about the past, and what it answers.

Plain Python: no web framework, no database driver. Amounts are integer minor units of the
check's :class:`~steadypay.money.Currency`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from steadypay.money import Currency

WallClock = Callable[[], datetime]
"""Wall-clock time, aware (UTC). Injectable so tests can move time."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Check:
    """One transfer the caller is about to make, as it asked about it."""

    transfer_id: UUID
    sender_user_id: UUID
    receiver_user_id: UUID | None
    from_wallet_id: UUID
    to_wallet_id: UUID
    amount_minor: int
    currency: Currency
    sender_created_at: datetime

    def __post_init__(self) -> None:
        if type(self.amount_minor) is not int or self.amount_minor <= 0:
            raise ValueError("amount_minor must be a positive int")
        if self.sender_created_at.tzinfo is None:
            raise ValueError("sender_created_at must carry a time zone")

    @property
    def receiver_key(self) -> UUID:
        """Who is paid: the receiving user when known, else the receiving wallet."""
        return self.receiver_user_id if self.receiver_user_id is not None else self.to_wallet_id

    @property
    def reverse_key(self) -> UUID | None:
        """The sender of a payment in the opposite direction (receiver -> sender), when that
        direction means anything: the receiver is a known user other than the sender."""
        if self.receiver_user_id is None or self.receiver_user_id == self.sender_user_id:
            return None
        return self.receiver_user_id

    def fingerprint(self) -> str:
        """SHA-256 (hex) of every field: a repeat of this transfer_id must match it exactly."""
        canonical = json.dumps(
            [
                str(self.transfer_id),
                str(self.sender_user_id),
                None if self.receiver_user_id is None else str(self.receiver_user_id),
                str(self.from_wallet_id),
                str(self.to_wallet_id),
                self.amount_minor,
                self.currency.code,
                self.sender_created_at.astimezone(UTC).isoformat(),
            ],
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Facts:
    """What the history store knew about the sender when the check was first recorded,
    excluding the check itself.

    ``at`` is the time of that first recording: the rules' "now". ``counts`` and
    ``sums_minor`` are keyed by window length in seconds: checks by the sender with a time in
    ``(at - window, ...]``, and the sum of their amounts in the check's currency.
    """

    at: datetime
    counts: Mapping[int, int] = field(default_factory=dict)
    sums_minor: Mapping[int, int] = field(default_factory=dict)
    last_to_receiver_at: datetime | None = None
    """The latest earlier check from this sender to this receiver."""
    last_from_receiver_at: datetime | None = None
    """The latest earlier check from the receiver to this sender (the opposite direction)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    risk_score: int
    reasons: tuple[str, ...]
    model_version: str

    def __post_init__(self) -> None:
        if not 0 <= self.risk_score <= 100:
            raise ValueError("risk_score must be within 0..100")

    def to_json(self) -> dict[str, object]:
        return {
            "risk_score": self.risk_score,
            "reasons": list(self.reasons),
            "model_version": self.model_version,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> Verdict:
        raw = json.loads(text)
        return cls(int(raw["risk_score"]), tuple(raw["reasons"]), str(raw["model_version"]))
