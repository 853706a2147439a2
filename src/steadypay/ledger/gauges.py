"""Ledger gauges read from PostgreSQL at scrape time (open holds, the last ledger check),
and where a ledger check's outcome is recorded."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from steadypay.db.router import Consistency, DatabaseRouter
from steadypay.observability.gauges import (
    HOLDS_OPEN,
    HOLDS_OPEN_AMOUNT,
    LEDGER_CHECK_TIMESTAMP,
    LEDGER_CHECK_VIOLATIONS,
)

_HOLDS_SQL = """
SELECT currency, count(*) AS holds, sum(amount)::bigint AS amount
FROM transfers WHERE status = 'pending_review'
GROUP BY currency
"""
_LAST_CHECK_SQL = """
SELECT violations, extract(epoch FROM checked_at)::float8 AS checked_at
FROM observability.ledger_checks ORDER BY id DESC LIMIT 1
"""

_RECORD_CHECK_SQL = """
INSERT INTO observability.ledger_checks (violations, report) VALUES ($1, $2::jsonb)
RETURNING id
"""

_held_currencies: set[str] = set()
"""Currencies this process has seen holds in: set to 0 when their last hold resolves."""
_ledger_check_known = False


async def record_ledger_check(
    conn: asyncpg.Connection, violations: int, report: dict[str, Any]
) -> int | None:
    """Store the outcome of a ledger check in ``observability.ledger_checks`` (the last one
    feeds ``steadypay_ledger_check_violations``). Its id, or None when the table does not exist
    (migration 0005 not applied)."""
    try:
        found: int = await conn.fetchval(
            _RECORD_CHECK_SQL, violations, json.dumps(report, default=str), timeout=10
        )
    except asyncpg.UndefinedTableError:
        return None
    return found


async def refresh_state_gauges(db: DatabaseRouter, timeout_s: float) -> None:
    """Read open holds and the last ledger check into their gauges (one connection, each query
    limited to ``timeout_s``; the outbox gauges are set by ``steadypay.outbox.health``). On failure
    the gauges keep their last value, except that a ledger-check gauge this process never
    read becomes -1 (unknown) rather than staying at 0."""
    global _ledger_check_known
    try:
        async with db.reader(Consistency.BOUNDED).connection() as conn:
            holds = await conn.fetch(_HOLDS_SQL, timeout=timeout_s)
            try:
                last = await conn.fetchrow(_LAST_CHECK_SQL, timeout=timeout_s)
            except asyncpg.UndefinedTableError:  # migration 0005 not applied: never recorded
                last = None
    except BaseException:
        if not _ledger_check_known:
            LEDGER_CHECK_VIOLATIONS.set(-1)
        raise
    HOLDS_OPEN.set(sum(r["holds"] for r in holds))
    amounts = {r["currency"]: r["amount"] for r in holds}
    _held_currencies.update(amounts)
    for currency in _held_currencies:
        HOLDS_OPEN_AMOUNT.labels(currency).set(amounts.get(currency, 0))
    if last is None:
        LEDGER_CHECK_VIOLATIONS.set(-1)
    else:
        LEDGER_CHECK_VIOLATIONS.set(last["violations"])
        LEDGER_CHECK_TIMESTAMP.set(last["checked_at"])
    _ledger_check_known = True
