"""Background jobs of the ledger: voiding holds whose review time ran out."""

from __future__ import annotations

import asyncio

import structlog

from steadypay.errors import ServiceUnavailable
from steadypay.ledger.service import Ledger

log = structlog.get_logger(__name__)


async def expire_holds_forever(ledger: Ledger, interval_s: float) -> None:
    """Every ``interval_s``, void the holds past ``hold_expires_at`` (safe in many workers:
    each hold is resolved under its row lock, once)."""
    while True:
        try:
            expired = await ledger.expire_due_holds()
            if expired:
                log.info("holds_expired", count=expired)
        except ServiceUnavailable as exc:
            log.warning("hold_expiry_skipped", reason=exc.code)
        await asyncio.sleep(interval_s)
