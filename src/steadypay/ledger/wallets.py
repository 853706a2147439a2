"""Wallet use cases: open a wallet, read it, read its entries and transfers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from steadypay.db.router import Consistency, DatabaseRouter
from steadypay.errors import NotFound, WalletExists
from steadypay.idempotency.domain import IdempotencyClaim
from steadypay.ledger import repository as sql
from steadypay.ledger.domain import AccountKind, Transfer


@dataclass(frozen=True, slots=True)
class Wallet:
    id: UUID
    kind: AccountKind
    user_id: UUID | None
    currency: str
    balance: int
    available_balance: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    transfer_id: UUID
    currency: str
    amount: int
    balance_before: int
    balance_after: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Parties:
    sender_user_id: UUID
    receiver_user_id: UUID | None
    sender_created_at: datetime


def _wallet(row: asyncpg.Record) -> Wallet:
    return Wallet(
        id=row["id"],
        kind=AccountKind(row["kind"]),
        user_id=row["user_id"],
        currency=row["currency"],
        balance=row["balance"],
        available_balance=row["available_balance"],
        created_at=row["created_at"],
    )


class Wallets:
    def __init__(self, db: DatabaseRouter) -> None:
        self._db = db

    async def open(self, user_id: UUID, currency: str) -> Wallet:
        try:
            async with self._db.writer().transaction() as conn:
                row = await sql.insert_wallet(conn, uuid.uuid4(), user_id, currency, uuid.uuid4())
        except asyncpg.exceptions.UniqueViolationError as exc:
            raise WalletExists(param="currency") from exc
        except asyncpg.exceptions.ForeignKeyViolationError as exc:
            raise NotFound("no such user", param="user_id") from exc
        return _wallet(row)

    async def get(self, wallet_id: UUID) -> Wallet | None:
        async with self._db.reader().connection() as conn:
            row = await sql.get_wallet(conn, wallet_id)
        return _wallet(row) if row else None

    async def parties(
        self, from_id: UUID, to_id: UUID, *, unless_answered: IdempotencyClaim | None = None
    ) -> Parties | None:
        """Owners of both wallets and the sender's account age; None if either is missing, or
        if a response is already stored for ``unless_answered`` (a replay, which moves nothing
        and needs no risk judged). One query for both questions."""
        principal, key = (
            (unless_answered.principal, unless_answered.key) if unless_answered else (None, None)
        )
        async with self._db.reader().connection() as conn:
            row = await conn.fetchrow(
                """
                SELECT f.user_id AS sender, u.created_at AS sender_created_at,
                       t.user_id AS receiver
                FROM wallets f JOIN users u ON u.id = f.user_id, wallets t
                WHERE f.id = $1 AND t.id = $2
                  AND NOT EXISTS (SELECT 1 FROM idempotency_keys
                                  WHERE principal = $3 AND key = $4
                                    AND response_body IS NOT NULL)
                """,
                from_id,
                to_id,
                principal,
                key,
            )
        if row is None:
            return None
        return Parties(row["sender"], row["receiver"], row["sender_created_at"])

    async def user_wallet_ids(self, user_id: UUID) -> list[UUID]:
        async with self._db.reader().connection() as conn:
            rows = await conn.fetch("SELECT id FROM wallets WHERE user_id = $1", user_id)
        return [r["id"] for r in rows]

    async def entries(
        self, wallet_id: UUID, *, limit: int, starting_after: int | None
    ) -> tuple[list[Entry], bool]:
        """Newest first; returns (page, has_more)."""
        async with self._db.reader(Consistency.BOUNDED).connection() as conn:
            rows = await sql.list_entries(conn, wallet_id, limit + 1, starting_after)
        page = [
            Entry(r["id"], r["transfer_id"], r["currency"], r["amount"], r["balance_before"],
                  r["balance_after"], r["created_at"])
            for r in rows[:limit]
        ]  # fmt: skip
        return page, len(rows) > limit

    async def transfer(self, transfer_id: UUID) -> Transfer | None:
        async with self._db.reader(Consistency.BOUNDED).connection() as conn:
            return await sql.get_transfer(conn, transfer_id)

    async def transfers(
        self, *, wallet_ids: Sequence[UUID] | None, limit: int, starting_after: UUID | None
    ) -> tuple[list[Transfer], bool]:
        async with self._db.reader(Consistency.BOUNDED).connection() as conn:
            rows = await sql.list_transfers(
                conn, wallet_ids=wallet_ids, limit=limit + 1, starting_after=starting_after
            )
        return rows[:limit], len(rows) > limit
