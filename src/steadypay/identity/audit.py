"""The audit trail: who did what, when, from where (migration 0011's ``audit_log``).

Append-only in PostgreSQL (triggers refuse UPDATE, DELETE and TRUNCATE). An action that changes
the database records its entry in the same transaction (:func:`record_in`), so there is no
approval without its row and no row without its approval; an action outside the database
(switching chaos on, acknowledging a failover) records right after it succeeded
(:meth:`Audit.record`).
"""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from steadypay.db.router import DatabaseRouter

HOLD_APPROVE = "hold.approve"
HOLD_REJECT = "hold.reject"
OUTBOX_REDELIVER = "outbox.redeliver"
CHAOS_SET = "chaos.set"
FAILOVER_ACK = "failover.acknowledge"
ADMIN_KEY_CREATE = "admin_key.create"
ADMIN_KEY_ROTATE = "admin_key.rotate"
ADMIN_KEY_REVOKE = "admin_key.revoke"
USER_KEY_ROTATE = "user_key.rotate"
USER_KEY_REVOKE = "user_key.revoke"
BACKUP_RUN = "backup.run"
BACKUP_PRUNE = "backup.prune"
BACKUP_SYNC_DR = "backup.sync_dr"
BACKUP_RESTORE = "backup.restore"
DR_FAILOVER = "dr.failover"


def cli_actor() -> str:
    """Who runs a command on this machine, for the audit trail: ``cli:<login>@<host>``."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "unknown"
    return f"cli:{login}@{socket.gethostname()}"[:200]


def cli_entry(action: str, target: str | None = None, **details: Any) -> AuditEntry:
    """An action of a command run here (``source`` is ``local``)."""
    return AuditEntry(cli_actor(), action, target, "local", None, details)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One admin action: ``actor`` is a principal's ``actor`` (``admin:ak_…``, ``user:<id>``,
    ``cli:<user>@<host>``), ``source`` the client address."""

    actor: str
    action: str
    target: str | None = None
    source: str | None = None
    request_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def about(self, action: str, target: str | None, **details: Any) -> AuditEntry:
        """The same who and where, another what."""
        return AuditEntry(self.actor, action, target, self.source, self.request_id, details)


async def record_in(conn: asyncpg.Connection, entry: AuditEntry) -> None:
    """Write ``entry`` on ``conn``, inside the caller's transaction."""
    await conn.execute(
        """
        INSERT INTO audit_log (actor, action, target, source, request_id, details)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb)
        """,
        entry.actor[:200],
        entry.action,
        entry.target,
        entry.source[:200] if entry.source else None,
        entry.request_id,
        json.dumps(entry.details, default=str),
    )


def _row_json(row: asyncpg.Record) -> dict[str, Any]:
    at: datetime = row["at"]
    return {
        "id": row["id"],
        "at": at.isoformat(),
        "actor": row["actor"],
        "action": row["action"],
        "target": row["target"],
        "source": row["source"],
        "request_id": row["request_id"],
        "details": json.loads(row["details"]),
    }


class Audit:
    def __init__(self, db: DatabaseRouter) -> None:
        self._db = db

    async def record(self, entry: AuditEntry) -> None:
        async with self._db.writer().connection() as conn:
            await record_in(conn, entry)

    async def page(
        self, *, limit: int, starting_after: int | None = None, actor: str | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        """Newest first; ``starting_after`` is an entry id from the previous page."""
        async with self._db.writer().connection() as conn:
            rows = await conn.fetch(
                """
                SELECT id, at, actor, action, target, source, request_id, details::text
                FROM audit_log
                WHERE ($1::bigint IS NULL OR id < $1) AND ($2::text IS NULL OR actor = $2)
                ORDER BY id DESC LIMIT $3
                """,
                starting_after,
                actor,
                limit + 1,
            )
        return [_row_json(r) for r in rows[:limit]], len(rows) > limit
