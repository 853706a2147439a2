"""SQL of the monitor: monitor.rounds, monitor.failovers, monitor.canary.

The failover gate is decided in the database, under a transaction-level advisory lock, so that
whatever the monitors believe about their roles, two of them can never both open a failover
while an earlier one is unacknowledged and in its cool-down; the cool-down survives restarts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from steadypay.db.router import Consistency, DatabaseRouter

GATE_LOCK_KEY = 0x5354_4D4F_4E47_4154  # "STMONGAT": serialises opening failovers
PRUNE_BATCH = 10_000


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value  # jsonb arrives as text


@dataclass(frozen=True, slots=True)
class RoundRecord:
    monitor_id: str
    role: str
    started_at: datetime
    finished_at: datetime
    healthy: bool
    components: dict[str, Any]
    consecutive_failures: int
    decision: str
    reason: str
    failover_id: int | None = None
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "monitor_id": self.monitor_id,
            "role": self.role,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "healthy": self.healthy,
            "components": self.components,
            "consecutive_failures": self.consecutive_failures,
            "decision": self.decision,
            "reason": self.reason,
            "failover_id": None if self.failover_id is None else str(self.failover_id),
        }


@dataclass(frozen=True, slots=True)
class Failover:
    id: int
    monitor_id: str
    triggered_at: datetime
    finished_at: datetime | None
    reason: str
    action: str
    outcome: str
    detail: dict[str, Any]
    acknowledged_at: datetime | None
    acknowledged_by: str | None

    def blocks_until(self, cooldown_s: float) -> datetime | None:
        """Until when this failover holds back the next one (None: acknowledged)."""
        if self.acknowledged_at is not None:
            return None
        return self.triggered_at + timedelta(seconds=cooldown_s)

    def to_json(self, cooldown_s: float) -> dict[str, Any]:
        until = self.blocks_until(cooldown_s)
        return {
            "id": str(self.id),
            "monitor_id": self.monitor_id,
            "triggered_at": self.triggered_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "reason": self.reason,
            "action": self.action,
            "outcome": self.outcome,
            "detail": self.detail,
            "acknowledged_at": self.acknowledged_at.isoformat() if self.acknowledged_at else None,
            "acknowledged_by": self.acknowledged_by,
            "cooldown_until": until.isoformat() if until else None,
        }


_FAILOVER_COLUMNS = """id, monitor_id, triggered_at, finished_at, reason, action, outcome, detail,
    acknowledged_at, acknowledged_by"""
_ROUND_COLUMNS = """id, monitor_id, role, started_at, finished_at, healthy, components,
    consecutive_failures, decision, reason, failover_id"""


def _failover(row: asyncpg.Record) -> Failover:
    return Failover(
        id=row["id"],
        monitor_id=row["monitor_id"],
        triggered_at=row["triggered_at"],
        finished_at=row["finished_at"],
        reason=row["reason"],
        action=row["action"],
        outcome=row["outcome"],
        detail=_json(row["detail"]),
        acknowledged_at=row["acknowledged_at"],
        acknowledged_by=row["acknowledged_by"],
    )


def _round(row: asyncpg.Record) -> RoundRecord:
    return RoundRecord(
        id=row["id"],
        monitor_id=row["monitor_id"],
        role=row["role"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        healthy=row["healthy"],
        components=_json(row["components"]),
        consecutive_failures=row["consecutive_failures"],
        decision=row["decision"],
        reason=row["reason"],
        failover_id=row["failover_id"],
    )


async def insert_round(db: DatabaseRouter, record: RoundRecord) -> int:
    async with db.writer().connection() as conn:
        round_id: int = await conn.fetchval(
            f"""
            INSERT INTO monitor.rounds ({_ROUND_COLUMNS.replace("id, ", "", 1)})
            VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10) RETURNING id
            """,
            record.monitor_id,
            record.role,
            record.started_at,
            record.finished_at,
            record.healthy,
            json.dumps(record.components),
            record.consecutive_failures,
            record.decision,
            record.reason,
            record.failover_id,
        )
    return round_id


async def rounds_page(
    db: DatabaseRouter, *, limit: int, starting_after: int | None
) -> tuple[list[RoundRecord], bool]:
    """Rounds, newest first; ``starting_after`` is the id of the last round of the previous
    page."""
    async with db.reader(Consistency.BOUNDED).connection() as conn:
        rows = await conn.fetch(
            f"""
            SELECT {_ROUND_COLUMNS} FROM monitor.rounds
            WHERE $1::bigint IS NULL OR id < $1 ORDER BY id DESC LIMIT $2
            """,
            starting_after,
            limit + 1,
        )
    return [_round(r) for r in rows[:limit]], len(rows) > limit


async def recent_failovers(db: DatabaseRouter, limit: int = 10) -> list[Failover]:
    async with db.reader(Consistency.BOUNDED).connection() as conn:
        rows = await conn.fetch(
            f"SELECT {_FAILOVER_COLUMNS} FROM monitor.failovers ORDER BY id DESC LIMIT $1", limit
        )
    return [_failover(r) for r in rows]


async def blocking_failover(db: DatabaseRouter, cooldown_s: float) -> Failover | None:
    """The newest failover that is unacknowledged and still in its cool-down, if any."""
    async with db.writer().connection() as conn:
        return await _blocking(conn, cooldown_s)


async def _blocking(conn: asyncpg.Connection, cooldown_s: float) -> Failover | None:
    row = await conn.fetchrow(
        f"""
        SELECT {_FAILOVER_COLUMNS} FROM monitor.failovers
        WHERE acknowledged_at IS NULL
          AND triggered_at > now() - make_interval(secs => $1::double precision)
        ORDER BY id DESC LIMIT 1
        """,
        cooldown_s,
    )
    return _failover(row) if row else None


async def open_failover(
    db: DatabaseRouter, *, monitor_id: str, reason: str, action: str, cooldown_s: float
) -> tuple[Failover | None, Failover | None]:
    """(opened, blocking): open a failover (outcome ``running``) unless one blocks it."""
    async with db.writer().transaction() as conn:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", GATE_LOCK_KEY)
        blocking = await _blocking(conn, cooldown_s)
        if blocking is not None:
            return None, blocking
        row = await conn.fetchrow(
            f"""
            INSERT INTO monitor.failovers (monitor_id, reason, action, outcome)
            VALUES ($1, $2, $3, 'running') RETURNING {_FAILOVER_COLUMNS}
            """,
            monitor_id,
            reason,
            action,
        )
    assert row is not None
    return _failover(row), None


async def finish_failover(
    db: DatabaseRouter, failover_id: int, outcome: str, detail: dict[str, Any]
) -> None:
    async with db.writer().connection() as conn:
        await conn.execute(
            """
            UPDATE monitor.failovers SET outcome = $2, detail = $3::jsonb, finished_at = now()
            WHERE id = $1
            """,
            failover_id,
            outcome,
            json.dumps(detail),
        )


async def insert_finished_failover(
    db: DatabaseRouter,
    *,
    monitor_id: str,
    reason: str,
    action: str,
    outcome: str,
    detail: dict[str, Any],
    triggered_at: datetime,
) -> int:
    """Record a failover acted on while the database was unreachable."""
    async with db.writer().connection() as conn:
        failover_id: int = await conn.fetchval(
            """
            INSERT INTO monitor.failovers
                (monitor_id, triggered_at, finished_at, reason, action, outcome, detail)
            VALUES ($1, $2, now(), $3, $4, $5, $6::jsonb) RETURNING id
            """,
            monitor_id,
            triggered_at,
            reason,
            action,
            outcome,
            json.dumps(detail),
        )
    return failover_id


async def latest_round(db: DatabaseRouter, role: str | None = None) -> RoundRecord | None:
    """The newest round (of the leader, with ``role="leader"``)."""
    async with db.reader().connection() as conn:
        row = await conn.fetchrow(
            f"""
            SELECT {_ROUND_COLUMNS} FROM monitor.rounds
            WHERE $1::text IS NULL OR role = $1 ORDER BY id DESC LIMIT 1
            """,
            role,
        )
    return _round(row) if row else None


async def acknowledge_failover(db: DatabaseRouter, failover_id: int, by: str) -> Failover | None:
    """Acknowledge a failover (idempotent: a second ack keeps the first's time)."""
    async with db.writer().connection() as conn:
        row = await conn.fetchrow(
            f"""
            UPDATE monitor.failovers
            SET acknowledged_at = coalesce(acknowledged_at, now()),
                acknowledged_by = coalesce(acknowledged_by, $2)
            WHERE id = $1 RETURNING {_FAILOVER_COLUMNS}
            """,
            failover_id,
            by,
        )
    return _failover(row) if row else None


async def prune_rounds(db: DatabaseRouter, keep_s: float) -> int:
    """Delete rounds older than ``keep_s`` seconds, in batches; returns how many."""
    total = 0
    while True:
        async with db.writer().connection() as conn:
            status = await conn.execute(
                """
                DELETE FROM monitor.rounds WHERE id IN (
                    SELECT id FROM monitor.rounds
                    WHERE started_at < now() - make_interval(secs => $1::double precision)
                    LIMIT $2)
                """,
                keep_s,
                PRUNE_BATCH,
            )
        deleted = int(status.split()[-1])
        total += deleted
        if deleted < PRUNE_BATCH:
            return total


# --- the canary's accounts -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CanaryAccounts:
    currency: str
    user_a: UUID
    wallet_a: UUID
    user_b: UUID
    wallet_b: UUID


async def load_canary(conn: asyncpg.Connection) -> CanaryAccounts | None:
    row = await conn.fetchrow(
        "SELECT currency, user_a, wallet_a, user_b, wallet_b FROM monitor.canary WHERE id = 1"
    )
    if row is None:
        return None
    return CanaryAccounts(
        row["currency"].strip(), row["user_a"], row["wallet_a"], row["user_b"], row["wallet_b"]
    )


async def save_canary(conn: asyncpg.Connection, accounts: CanaryAccounts) -> None:
    await conn.execute(
        """
        INSERT INTO monitor.canary (id, currency, user_a, wallet_a, user_b, wallet_b)
        VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING
        """,
        accounts.currency,
        accounts.user_a,
        accounts.wallet_a,
        accounts.user_b,
        accounts.wallet_b,
    )


async def user_id_by_email(conn: asyncpg.Connection, email: str) -> UUID | None:
    user_id: UUID | None = await conn.fetchval(
        "SELECT id FROM users WHERE lower(email) = lower($1)", email
    )
    return user_id


async def wallet_id_of(conn: asyncpg.Connection, user_id: UUID, currency: str) -> UUID | None:
    wallet_id: UUID | None = await conn.fetchval(
        "SELECT id FROM wallets WHERE user_id = $1 AND currency = $2", user_id, currency
    )
    return wallet_id


async def set_api_key_hash(conn: asyncpg.Connection, user_id: UUID, key_hash: bytes) -> None:
    """Give a canary user the key the monitor derives (only its hash is stored)."""
    await conn.execute(
        "UPDATE users SET api_key_hash = $2 WHERE id = $1 AND api_key_hash <> $2",
        user_id,
        key_hash,
    )


async def ledger_view(
    conn: asyncpg.Connection, transfer_ids: list[UUID], wallet_ids: list[UUID]
) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    """The entries of the canary's transfers, and each canary wallet's balance next to the
    sum of its entries (one consistent snapshot)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        entries = await conn.fetch(
            "SELECT transfer_id, wallet_id, amount FROM entries WHERE transfer_id = ANY($1)",
            transfer_ids,
        )
        balances = await conn.fetch(
            """
            SELECT w.id, w.balance, coalesce(sum(e.amount), 0) AS entries_total
            FROM wallets w LEFT JOIN entries e ON e.wallet_id = w.id
            WHERE w.id = ANY($1) GROUP BY w.id, w.balance
            """,
            wallet_ids,
        )
    return entries, balances
