"""SQL for idempotency keys. Claims run inside the caller's (the ledger's) transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from steadypay.idempotency.domain import IdempotencyClaim, StoredResponse


@dataclass(frozen=True, slots=True)
class ExistingKey:
    fingerprint: bytes
    response: StoredResponse


async def claim(
    conn: asyncpg.Connection, claims: Sequence[IdempotencyClaim], ttl_hours: float
) -> tuple[set[tuple[str, str]], dict[tuple[str, str], ExistingKey]]:
    """Insert the keys; return those now ours, and the stored results of those already used.

    A key that another in-flight transaction has inserted makes this statement wait until that
    transaction ends (unique index semantics): when it commits, we see its stored response and
    replay it; when it rolls back, the key becomes ours. Keys are inserted in sorted order so two
    batches cannot deadlock on each other's keys.
    """
    ordered = sorted(claims, key=lambda c: (c.principal, c.key))
    rows = await conn.fetch(
        """
        INSERT INTO idempotency_keys (principal, key, fingerprint, expires_at)
        SELECT p, k, f, now() + make_interval(secs => $4::float8 * 3600)
        FROM unnest($1::text[], $2::text[], $3::bytea[]) WITH ORDINALITY AS t(p, k, f, n)
        ORDER BY n
        ON CONFLICT (principal, key) DO NOTHING
        RETURNING principal, key
        """,
        [c.principal for c in ordered],
        [c.key for c in ordered],
        [c.fingerprint for c in ordered],
        ttl_hours,
    )
    mine = {(r["principal"], r["key"]) for r in rows}
    taken = [c for c in ordered if (c.principal, c.key) not in mine]
    existing: dict[tuple[str, str], ExistingKey] = {}
    if taken:
        stored = await conn.fetch(
            """
            SELECT principal, key, fingerprint, response_status, response_body
            FROM idempotency_keys
            WHERE (principal, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))
            """,
            [c.principal for c in taken],
            [c.key for c in taken],
        )
        for r in stored:
            existing[(r["principal"], r["key"])] = ExistingKey(
                bytes(r["fingerprint"]), StoredResponse(r["response_status"], r["response_body"])
            )
    return mine, existing


async def purge_expired(conn: asyncpg.Connection, batch_size: int = 5_000) -> int:
    """Delete expired keys in small batches (short locks). Returns how many were removed."""
    removed = 0
    while True:
        status = await conn.execute(
            """
            DELETE FROM idempotency_keys
            WHERE ctid = ANY (ARRAY(
                SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT $1
            ))
            """,
            batch_size,
        )
        count = int(status.split()[-1])
        removed += count
        if count < batch_size:
            return removed
