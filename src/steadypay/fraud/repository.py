"""Velocity and history in PostgreSQL: the table ``fraud.checks`` (migration 0003).

One transaction per check:

1. ``pg_advisory_xact_lock(FRAUD_LOCK_CLASS, <sender>)`` serialises the checks of one sender
   (and so every repeat of one transfer_id), so each sees all the ones before it;
2. one query reads an earlier row with this transfer_id and the facts: the earlier row is
   replayed (or refused if its details differ);
3. else the verdict is decided on the facts and the row inserted with it.

Rows are kept for ``retention`` (the longest of the velocity windows, the receiver memory and
the idempotency period) and then purged in batches by :func:`purge_forever`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg
import structlog

from steadypay.db.router import DatabaseRouter
from steadypay.errors import IdempotencyKeyReuse, ServiceUnavailable
from steadypay.fraud.domain import Check, Facts, Verdict, WallClock
from steadypay.fraud.velocity import Decide, Recorded, StoreName

log = structlog.get_logger(__name__)

FRAUD_LOCK_CLASS = 0x4652_4144  # "FRAD": first key of the two-int advisory locks used here
PURGE_LOCK_ID = 0x4652_4150_5547  # one purger at a time across instances
PURGE_BATCH = 5_000

_EXISTING = """
SELECT request_hash, risk_score, reasons, model_version FROM fraud.checks WHERE transfer_id = $1
"""
# The earlier check of this transfer_id (if any) and every fact the rules need, read under the
# sender's lock in one round trip: the sender's count and total per velocity window, and when
# the sender last paid this receiver and the receiver last paid the sender.
_FACTS = """
SELECT x.request_hash, x.risk_score, x.reasons, x.model_version,
       w.windows, w.counts, w.totals, p.last_to, p.last_from
FROM (SELECT 1) AS one
LEFT JOIN fraud.checks AS x ON x.transfer_id = $1
CROSS JOIN (
    SELECT array_agg(v.window_s ORDER BY v.window_s) AS windows,
           array_agg(v.n ORDER BY v.window_s) AS counts,
           array_agg(v.total ORDER BY v.window_s) AS totals
    FROM (
        SELECT w.window_s,
               count(c.transfer_id) AS n,
               (coalesce(sum(c.amount_minor) FILTER (WHERE c.currency = $4), 0))::text AS total
        FROM unnest($5::int[]) AS w (window_s)
        LEFT JOIN fraud.checks AS c
               ON c.sender_user_id = $2
              AND c.checked_at > $3::timestamptz - make_interval(secs => w.window_s)
        GROUP BY w.window_s
    ) AS v
) AS w
CROSS JOIN (
    SELECT (SELECT max(checked_at) FROM fraud.checks
             WHERE sender_user_id = $2 AND receiver_key = $6) AS last_to,
           (SELECT max(checked_at) FROM fraud.checks
             WHERE sender_user_id = $7 AND receiver_key = $2) AS last_from
) AS p
"""
_INSERT = """
INSERT INTO fraud.checks (transfer_id, sender_user_id, receiver_user_id, receiver_key, currency,
                          amount_minor, checked_at, request_hash, risk_score, reasons,
                          model_version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (transfer_id) DO NOTHING
RETURNING true
"""
_PURGE = """
DELETE FROM fraud.checks WHERE transfer_id IN (
    SELECT transfer_id FROM fraud.checks WHERE checked_at < $1 ORDER BY checked_at LIMIT $2
)
"""


def sender_lock_key(sender: UUID) -> int:
    """A signed 32-bit key from the sender id (collisions only serialise two senders)."""
    return int.from_bytes(sender.bytes[:4], "big", signed=True)


class PostgresVelocity:
    name: StoreName = "postgres"

    def __init__(self, db: DatabaseRouter, windows_s: tuple[int, ...]) -> None:
        self._db = db
        self._windows_s = list(windows_s)

    async def record(self, check: Check, at: datetime, decide: Decide) -> Recorded:
        fingerprint = bytes.fromhex(check.fingerprint())
        async with self._db.writer().transaction() as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                FRAUD_LOCK_CLASS,
                sender_lock_key(check.sender_user_id),
            )
            row = await conn.fetchrow(
                _FACTS,
                check.transfer_id,
                check.sender_user_id,
                at,
                check.currency.code,
                self._windows_s,
                check.receiver_key,
                check.reverse_key,
            )
            assert row is not None
            if row["request_hash"] is not None:
                return _replay(row, fingerprint, check)
            facts = _facts(row, at)
            verdict = decide(facts)
            inserted = await conn.fetchval(
                _INSERT,
                check.transfer_id,
                check.sender_user_id,
                check.receiver_user_id,
                check.receiver_key,
                check.currency.code,
                check.amount_minor,
                at,
                fingerprint,
                verdict.risk_score,
                list(verdict.reasons),
                verdict.model_version,
            )
            if not inserted:
                # The same transfer_id under another sender's lock committed first (a
                # mismatching repeat): it is now visible.
                row = await conn.fetchrow(_EXISTING, check.transfer_id)
                assert row is not None
                return _replay(row, fingerprint, check)
        return Recorded(verdict, replayed=False, store=self.name)


def _facts(row: asyncpg.Record, at: datetime) -> Facts:
    windows = row["windows"] or []
    return Facts(
        at=at,
        counts=dict(zip(windows, map(int, row["counts"] or []), strict=True)),
        sums_minor=dict(zip(windows, map(int, row["totals"] or []), strict=True)),
        last_to_receiver_at=row["last_to"],
        last_from_receiver_at=row["last_from"],
    )


def _replay(row: asyncpg.Record, fingerprint: bytes, check: Check) -> Recorded:
    if bytes(row["request_hash"]) != fingerprint:
        raise IdempotencyKeyReuse(
            "this transfer_id was already checked with different details",
            param="transfer_id",
            details={"transfer_id": str(check.transfer_id)},
        )
    verdict = Verdict(int(row["risk_score"]), tuple(row["reasons"]), str(row["model_version"]))
    return Recorded(verdict, replayed=True, store=PostgresVelocity.name)


async def purge_once(db: DatabaseRouter, older_than: datetime) -> int | None:
    """Delete checks recorded before ``older_than``; None if another process is purging."""
    removed = 0
    while True:
        async with db.writer().transaction() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", PURGE_LOCK_ID):
                return None
            status = await conn.execute(_PURGE, older_than, PURGE_BATCH)
        batch = int(status.split()[-1])
        removed += batch
        if batch < PURGE_BATCH:
            return removed


async def purge_forever(
    db: DatabaseRouter, retention: timedelta, interval_s: float, now: WallClock
) -> None:
    while True:
        try:
            removed = await purge_once(db, now() - retention)
            if removed:
                log.info("fraud_checks_purged", removed=removed)
        except ServiceUnavailable as exc:
            log.warning("fraud_purge_skipped", reason=exc.code)
        await asyncio.sleep(interval_s)


async def require_schema(db: DatabaseRouter) -> None:
    """Refuse to start on a database without the fraud schema."""
    async with db.writer().connection() as conn:
        if await conn.fetchval("SELECT to_regclass('fraud.checks')") is None:
            raise RuntimeError(
                "the fraud schema is missing: run `steadypay migrate` (migration 0003) first"
            )
