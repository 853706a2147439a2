"""Background purge of expired idempotency keys (kept at least 24 h, configurable)."""

from __future__ import annotations

import asyncio

import structlog

from steadypay.db.router import DatabaseRouter
from steadypay.errors import ServiceUnavailable
from steadypay.idempotency.repository import purge_expired

log = structlog.get_logger(__name__)
PURGE_LOCK_ID = 0x5350_4944  # one purger at a time across workers and instances


async def purge_once(db: DatabaseRouter) -> int | None:
    """Purge if no other process is purging; returns keys removed, or None if skipped."""
    async with db.writer().transaction() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", PURGE_LOCK_ID):
            return None
        return await purge_expired(conn)


async def purge_forever(db: DatabaseRouter, interval_s: float) -> None:
    while True:
        try:
            removed = await purge_once(db)
            if removed:
                log.info("idempotency_keys_purged", removed=removed)
        except ServiceUnavailable as exc:
            log.warning("idempotency_purge_skipped", reason=exc.code)
        await asyncio.sleep(interval_s)
