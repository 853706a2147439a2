"""The ledger's counts and sums, as a backup records them and a verified restore must match.

:func:`snapshot` reads them at a WAL position they hold exactly: in one REPEATABLE READ
transaction whose first statement takes ``SHARE`` locks on the ledger's tables (PostgreSQL
takes the snapshot at the first query after the LOCK, so it sees every write committed before
the lock and none can commit while it is held), it reads the totals and
``pg_current_wal_insert_lsn()``. Recovery to that LSN replays exactly the writes it counted.
"""

from __future__ import annotations

from typing import Any

import asyncpg

_TOTALS = """
SELECT
  (SELECT count(*) FROM wallets) AS wallets,
  (SELECT count(*) FROM entries) AS entries,
  (SELECT coalesce(sum(amount), 0)::text FROM entries WHERE amount > 0) AS entries_credited,
  (SELECT count(*) FROM transfers) AS transfers,
  (SELECT coalesce(json_object_agg(k, v), '{}')::text FROM (
       SELECT currency || ':' || status AS k,
              json_build_object('count', count(*), 'sum', sum(amount)::text) AS v
       FROM transfers GROUP BY currency, status) t) AS transfers_by_currency_status,
  (SELECT coalesce(json_object_agg(currency, total), '{}')::text FROM (
       SELECT currency, sum(balance)::text AS total FROM wallets WHERE kind = 'user'
       GROUP BY currency) w) AS user_balances
"""


def _as_json(row: asyncpg.Record) -> dict[str, Any]:
    import json

    return {
        "wallets": row["wallets"],
        "entries": row["entries"],
        "entries_credited": row["entries_credited"],
        "transfers": row["transfers"],
        "transfers_by_currency_status": json.loads(row["transfers_by_currency_status"]),
        "user_balances": json.loads(row["user_balances"]),
    }


async def totals(conn: asyncpg.Connection) -> dict[str, Any]:
    """Counts and sums of the ledger (JSON-able, compared with ``==``)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(_TOTALS)
    assert row is not None
    return _as_json(row)


async def snapshot(conn: asyncpg.Connection) -> tuple[str, dict[str, Any]]:
    """``(lsn, totals)``: the totals and a WAL position at which they hold exactly."""
    async with conn.transaction(isolation="repeatable_read"):
        await conn.execute("LOCK TABLE wallets, transfers, entries IN SHARE MODE")
        row = await conn.fetchrow(_TOTALS)
        lsn = await conn.fetchval("SELECT pg_current_wal_insert_lsn()::text")
    assert row is not None
    return str(lsn), _as_json(row)
