"""Transfers as the outside world sees them (API responses and outbox event payloads).

Amounts become decimal strings in major units here, at the edge; inside they stay integers.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from steadypay.ledger.domain import Transfer, TransferStatus
from steadypay.money import format_amount, get_currency

EVENT_FOR_STATUS = {
    TransferStatus.COMPLETED: "transfer.completed",
    TransferStatus.FAILED: "transfer.failed",
    TransferStatus.PENDING_REVIEW: "transfer.pending_review",
    TransferStatus.REJECTED: "transfer.rejected",
    TransferStatus.EXPIRED: "hold.expired",
}
APPROVED = "transfer.approved"


def transfer_json(transfer: Transfer) -> dict[str, Any]:
    risk = transfer.risk
    return {
        "id": str(transfer.id),
        "type": transfer.type.value,
        "status": transfer.status.value,
        "from_wallet_id": str(transfer.from_wallet_id) if transfer.from_wallet_id else None,
        "to_wallet_id": str(transfer.to_wallet_id) if transfer.to_wallet_id else None,
        "amount": format_amount(transfer.amount, get_currency(transfer.currency)),
        "currency": transfer.currency,
        "description": transfer.description,
        "failure_code": transfer.failure_code.value if transfer.failure_code else None,
        "risk": (
            {"score": risk.score, "source": risk.source, "reasons": list(risk.reasons)}
            if risk
            else None
        ),
        "hold_expires_at": _iso(transfer.hold_expires_at),
        "created_at": transfer.created_at.isoformat(),
        "completed_at": _iso(transfer.completed_at),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def event(
    event_type: str, transfer: Transfer, user_ids: list[str], now: datetime
) -> tuple[uuid.UUID, str, dict[str, Any]]:
    """An outbox event announcing a transfer's new state: (id, type, payload)."""
    event_id = uuid.uuid4()
    payload = {
        "id": str(event_id),
        "type": event_type,
        "created_at": now.isoformat(),
        "user_ids": user_ids,
        "data": {"transfer": transfer_json(transfer)},
    }
    return event_id, event_type, payload
