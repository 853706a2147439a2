"""SQL of the ledger. Set-based: a batch costs the same number of statements as one transfer."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from steadypay.ledger.domain import (
    FAILURE_MESSAGES,
    Account,
    AccountKind,
    FailureCode,
    Posting,
    Risk,
    Transfer,
    TransferStatus,
    TransferType,
)

_WALLET_COLUMNS = "id, kind, user_id, currency, balance, available_balance, created_at"
_TRANSFER_COLUMNS = (
    "id, type, status, from_wallet_id, to_wallet_id, amount, currency, description, "
    "failure_code, failure_message, initiated_by, created_at, completed_at, risk_score, "
    "risk_source, risk_reasons, hold_expires_at, resolved_at, resolved_by"
)


def account_from_row(row: asyncpg.Record) -> Account:
    return Account(
        id=row["id"],
        kind=AccountKind(row["kind"]),
        currency=row["currency"],
        balance=row["balance"],
        available_balance=row["available_balance"],
        user_id=row["user_id"],
    )


def transfer_from_row(row: asyncpg.Record) -> Transfer:
    return Transfer(
        id=row["id"],
        type=TransferType(row["type"]),
        status=TransferStatus(row["status"]),
        from_wallet_id=row["from_wallet_id"],
        to_wallet_id=row["to_wallet_id"],
        amount=row["amount"],
        currency=row["currency"],
        description=row["description"],
        initiated_by=row["initiated_by"],
        created_at=row["created_at"],
        completed_at=row["completed_at"],
        failure_code=FailureCode(row["failure_code"]) if row["failure_code"] else None,
        risk=(
            Risk(
                row["risk_score"],
                row["risk_source"],
                tuple(json.loads(row["risk_reasons"] or "[]")),
                review=row["hold_expires_at"] is not None,
            )
            if row["risk_source"]
            else None
        ),
        hold_expires_at=row["hold_expires_at"],
        resolved_at=row["resolved_at"],
        resolved_by=row["resolved_by"],
    )


async def lock_accounts(
    conn: asyncpg.Connection, wallet_ids: Iterable[UUID], system_currencies: Iterable[str]
) -> tuple[dict[UUID, Account], dict[str, Account], datetime]:
    """Lock the named wallets and the currencies' system accounts, always in id order.

    The ORDER BY sits below the row-locking step in PostgreSQL's plan, so every transaction
    takes its locks in the same global order and two transfers A->B and B->A cannot deadlock
    (the seed locked sender then receiver, which does).
    """
    rows = await conn.fetch(
        """
        SELECT id, kind, user_id, currency, balance, available_balance, now() AS tx_now
        FROM wallets
        WHERE id = ANY($1::uuid[]) OR (kind = 'system' AND currency = ANY($2::text[]))
        ORDER BY id
        FOR UPDATE
        """,
        sorted(set(wallet_ids)),
        sorted(set(system_currencies)),
    )
    accounts: dict[UUID, Account] = {}
    systems: dict[str, Account] = {}
    for row in rows:
        account = account_from_row(row)
        accounts[account.id] = account
        if account.kind is AccountKind.SYSTEM:
            systems[account.currency] = account
    now = rows[0]["tx_now"] if rows else await conn.fetchval("SELECT now()")
    return accounts, systems, now


def _transfer_columns(transfers: Sequence[Transfer]) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(16)]
    for t in transfers:
        risk = t.risk
        values = (
            t.id, t.type.value, t.status.value, t.from_wallet_id, t.to_wallet_id, t.amount,
            t.currency, t.description, t.failure_code.value if t.failure_code else None,
            FAILURE_MESSAGES[t.failure_code] if t.failure_code else None, t.initiated_by,
            t.completed_at, risk.score if risk else None, risk.source if risk else None,
            json.dumps(list(risk.reasons)) if risk else None, t.hold_expires_at,
        )  # fmt: skip
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return columns


def _posting_columns(postings: Sequence[Posting]) -> list[list[Any]]:
    return [
        [p.transfer_id for p in postings],
        [p.wallet_id for p in postings],
        [p.currency for p in postings],
        [p.amount for p in postings],
        [p.balance_before for p in postings],
        [p.balance_after for p in postings],
    ]


def _balance_columns(accounts: Sequence[Account]) -> list[list[Any]]:
    return [
        [a.id for a in accounts],
        [a.balance for a in accounts],
        [a.available_balance for a in accounts],
    ]


def _event_columns(
    events: Sequence[tuple[UUID, str, UUID | None, dict[str, Any]]],
) -> list[list[Any]]:
    return [
        [e[0] for e in events],
        [e[1] for e in events],
        [e[2] for e in events],
        [json.dumps(e[3], separators=(",", ":")) for e in events],
    ]


# One statement for everything a batch writes once its accounts are locked: the sub-statements
# of a WITH all run, whether or not the main query reads them, and the constraint checks
# (foreign keys, the postings-sum trigger) run at the end of the statement, when every row of
# it is in place. One round trip instead of five.
_WRITE_BATCH = """
WITH new_transfers AS (
    INSERT INTO transfers (id, type, status, from_wallet_id, to_wallet_id, amount, currency,
                           description, failure_code, failure_message, initiated_by,
                           completed_at, risk_score, risk_source, risk_reasons, hold_expires_at)
    SELECT id, type, status, fw, tw, amount, currency, description, fc, fm, ib, ca, rs, rsrc,
           rr::jsonb, he
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::uuid[], $6::int8[],
                $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                $12::timestamptz[], $13::int2[], $14::text[], $15::text[], $16::timestamptz[])
         AS t(id, type, status, fw, tw, amount, currency, description, fc, fm, ib, ca, rs,
              rsrc, rr, he)
), new_entries AS (
    INSERT INTO entries (transfer_id, wallet_id, currency, amount, balance_before, balance_after)
    SELECT * FROM unnest($17::uuid[], $18::uuid[], $19::text[], $20::int8[], $21::int8[],
                         $22::int8[])
), balances AS (
    UPDATE wallets AS w
    SET balance = v.balance, available_balance = v.available_balance, updated_at = now()
    FROM unnest($23::uuid[], $24::int8[], $25::int8[]) AS v(id, balance, available_balance)
    WHERE w.id = v.id
), events AS (
    INSERT INTO outbox_events (id, type, transfer_id, payload)
    SELECT id, type, transfer_id, payload::jsonb
    FROM unnest($26::uuid[], $27::text[], $28::uuid[], $29::text[])
         AS e(id, type, transfer_id, payload)
), responses AS (
    UPDATE idempotency_keys AS i
    SET response_status = v.status, response_body = v.body, transfer_id = v.transfer_id
    FROM unnest($30::text[], $31::text[], $32::int2[], $33::text[], $34::uuid[])
         AS v(principal, key, status, body, transfer_id)
    WHERE i.principal = v.principal AND i.key = v.key
)
SELECT 1
"""


async def write_batch(
    conn: asyncpg.Connection,
    transfers: Sequence[Transfer],
    postings: Sequence[Posting],
    accounts: Iterable[Account],
    events: Sequence[tuple[UUID, str, UUID | None, dict[str, Any]]],
    responses: Sequence[tuple[str, str, int, str | None, UUID | None]],
) -> None:
    """Insert the transfers, their postings and outbox events, write the new balances and the
    stored responses (principal, key, status, body, transfer id) of the idempotency keys
    claimed earlier in the transaction: all in one statement."""
    changed = list(accounts)
    await conn.execute(
        _WRITE_BATCH,
        *_transfer_columns(transfers),
        *_posting_columns(postings),
        *_balance_columns(changed),
        *_event_columns(events),
        *(list(column) for column in zip(*responses, strict=True)) if responses else [[]] * 5,
    )


async def insert_events(
    conn: asyncpg.Connection, events: Sequence[tuple[UUID, str, UUID | None, dict[str, Any]]]
) -> None:
    """Outbox rows, written in the transaction of the change they announce."""
    if not events:
        return
    await conn.execute(
        """
        INSERT INTO outbox_events (id, type, transfer_id, payload)
        SELECT id, type, transfer_id, payload::jsonb
        FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[])
             AS e(id, type, transfer_id, payload)
        """,
        *_event_columns(events),
    )


async def lock_transfer(conn: asyncpg.Connection, transfer_id: UUID) -> Transfer | None:
    row = await conn.fetchrow(
        f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE id = $1 FOR UPDATE", transfer_id
    )
    return transfer_from_row(row) if row else None


async def update_resolution(conn: asyncpg.Connection, transfer: Transfer) -> None:
    await conn.execute(
        """
        UPDATE transfers SET status = $2, completed_at = $3, resolved_at = $4, resolved_by = $5
        WHERE id = $1
        """,
        transfer.id,
        transfer.status.value,
        transfer.completed_at,
        transfer.resolved_at,
        transfer.resolved_by,
    )


async def due_holds(conn: asyncpg.Connection, limit: int) -> list[UUID]:
    rows = await conn.fetch(
        """
        SELECT id FROM transfers
        WHERE status = 'pending_review' AND hold_expires_at <= now()
        ORDER BY hold_expires_at LIMIT $1
        """,
        limit,
    )
    return [r["id"] for r in rows]


async def pending_reviews(
    conn: asyncpg.Connection, limit: int, starting_after: UUID | None
) -> list[Transfer]:
    """Holds awaiting a decision, oldest first (the review queue's order)."""
    rows = await conn.fetch(
        f"""
        SELECT {_TRANSFER_COLUMNS} FROM transfers
        WHERE status = 'pending_review'
          AND ($2::uuid IS NULL OR seq > (SELECT seq FROM transfers WHERE id = $2))
        ORDER BY seq LIMIT $1
        """,
        limit,
        starting_after,
    )
    return [transfer_from_row(r) for r in rows]


async def insert_postings(conn: asyncpg.Connection, postings: Sequence[Posting]) -> None:
    if not postings:
        return
    await conn.execute(
        """
        INSERT INTO entries (transfer_id, wallet_id, currency, amount, balance_before,
                             balance_after)
        SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int8[], $5::int8[],
                             $6::int8[])
        """,
        *_posting_columns(postings),
    )


async def update_balances(conn: asyncpg.Connection, accounts: Iterable[Account]) -> None:
    changed = list(accounts)
    if not changed:
        return
    await conn.execute(
        """
        UPDATE wallets AS w
        SET balance = v.balance, available_balance = v.available_balance, updated_at = now()
        FROM unnest($1::uuid[], $2::int8[], $3::int8[]) AS v(id, balance, available_balance)
        WHERE w.id = v.id
        """,
        *_balance_columns(changed),
    )


# --- wallets -----------------------------------------------------------------------------


async def insert_wallet(
    conn: asyncpg.Connection, wallet_id: UUID, user_id: UUID, currency: str, system_id: UUID
) -> asyncpg.Record:
    """Create a user wallet, and the currency's system account if this is its first wallet."""
    await conn.execute(
        """
        INSERT INTO wallets (id, kind, currency) VALUES ($1, 'system', $2)
        ON CONFLICT (currency) WHERE kind = 'system' DO NOTHING
        """,
        system_id,
        currency,
    )
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""
        INSERT INTO wallets (id, kind, user_id, currency) VALUES ($1, 'user', $2, $3)
        RETURNING {_WALLET_COLUMNS}
        """,
        wallet_id,
        user_id,
        currency,
    )
    assert row is not None  # INSERT ... RETURNING returns the row or raises
    return row


async def get_wallet(conn: asyncpg.Connection, wallet_id: UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_WALLET_COLUMNS} FROM wallets WHERE id = $1", wallet_id
    )
    return row


async def list_entries(
    conn: asyncpg.Connection, wallet_id: UUID, limit: int, starting_after: int | None
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT id, transfer_id, amount, balance_before, balance_after, created_at, currency
        FROM entries
        WHERE wallet_id = $1 AND ($2::int8 IS NULL OR id < $2)
        ORDER BY id DESC
        LIMIT $3
        """,
        wallet_id,
        starting_after,
        limit,
    )
    return rows


# --- transfers ---------------------------------------------------------------------------


async def get_transfer(conn: asyncpg.Connection, transfer_id: UUID) -> Transfer | None:
    row = await conn.fetchrow(
        f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE id = $1", transfer_id
    )
    return transfer_from_row(row) if row else None


async def list_transfers(
    conn: asyncpg.Connection,
    *,
    wallet_ids: Sequence[UUID] | None,
    limit: int,
    starting_after: UUID | None,
) -> list[Transfer]:
    """Newest first. ``wallet_ids`` None means every transfer (admins)."""
    rows = await conn.fetch(
        f"""
        SELECT {_TRANSFER_COLUMNS} FROM transfers
        WHERE ($1::uuid[] IS NULL
               OR from_wallet_id = ANY($1::uuid[]) OR to_wallet_id = ANY($1::uuid[]))
          AND ($2::uuid IS NULL OR seq < (SELECT seq FROM transfers WHERE id = $2))
        ORDER BY seq DESC
        LIMIT $3
        """,
        list(wallet_ids) if wallet_ids is not None else None,
        starting_after,
        limit,
    )
    return [transfer_from_row(r) for r in rows]
