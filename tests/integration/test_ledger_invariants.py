"""PostgreSQL enforces the ledger's invariants by itself, and the audit catches what slips by."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import asyncpg
import pytest

from steadypay.bootstrap import Container
from steadypay.ledger import repository as sql
from steadypay.ledger.audit import audit
from steadypay.ledger.domain import Posting, Transfer, TransferCommand, TransferStatus, TransferType
from steadypay.ledger.service import Executed, Ledger, WriteRequest
from tests.api_client import Api
from tests.conftest import fresh_database


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection inside a transaction that is always rolled back."""
    connection = await asyncpg.connect(database_url)
    tx = connection.transaction()
    await tx.start()
    try:
        yield connection
    finally:
        await tx.rollback()
        await connection.close()


async def _a_transfer_with_entries(api: Api) -> tuple[str, str]:
    _, a = await api.funded_wallet("10.00")
    _, b = await api.funded_wallet(amount="")
    r = await api.transfer(a["id"], b["id"], "1.00")
    assert r.status_code == 201
    return r.json()["id"], a["id"]


async def test_entries_cannot_be_updated(api: Api, conn: asyncpg.Connection) -> None:
    transfer_id, _ = await _a_transfer_with_entries(api)
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="append-only"):
        await conn.execute(
            "UPDATE entries SET amount = amount * 2 WHERE transfer_id = $1", uuid.UUID(transfer_id)
        )


async def test_entries_cannot_be_deleted_or_truncated(api: Api, database_url: str) -> None:
    transfer_id, _ = await _a_transfer_with_entries(api)
    connection = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.IntegrityConstraintViolationError):
            await connection.execute(
                "DELETE FROM entries WHERE transfer_id = $1", uuid.UUID(transfer_id)
            )
        with pytest.raises(asyncpg.IntegrityConstraintViolationError):
            await connection.execute("TRUNCATE entries CASCADE")
    finally:
        await connection.close()


async def test_unbalanced_postings_are_rejected(api: Api, conn: asyncpg.Connection) -> None:
    _, wallet_id = await _a_transfer_with_entries(api)
    transfer_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO transfers (id, type, status, to_wallet_id, amount, currency, initiated_by,"
        " completed_at) VALUES ($1, 'deposit', 'completed', $2, 100, 'USD', 'test', now())",
        transfer_id,
        uuid.UUID(wallet_id),
    )
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="sum to zero"):
        await conn.execute(
            "INSERT INTO entries (transfer_id, wallet_id, currency, amount, balance_before,"
            " balance_after) VALUES ($1, $2, 'USD', 100, 900, 1000)",
            transfer_id,
            uuid.UUID(wallet_id),
        )


async def test_the_one_statement_write_path_is_held_to_the_same_constraints(
    api: Api, conn: asyncpg.Connection
) -> None:
    """``write_batch`` writes transfers, postings, balances, events and responses in one
    statement: the foreign keys and the postings-sum trigger still judge every row of it."""
    _, wallet_id = await _a_transfer_with_entries(api)
    wallet = uuid.UUID(wallet_id)
    balance = await conn.fetchval("SELECT balance FROM wallets WHERE id = $1", wallet)
    deposit = Transfer(
        id=uuid.uuid4(), type=TransferType.DEPOSIT, status=TransferStatus.COMPLETED,
        from_wallet_id=None, to_wallet_id=wallet, amount=100, currency="USD",
        description=None, failure_code=None, initiated_by="test",
        created_at=datetime.now(UTC), completed_at=datetime.now(UTC),
    )  # fmt: skip
    one_sided = [Posting(deposit.id, wallet, "USD", 100, balance, balance + 100)]
    await conn.execute("SAVEPOINT before")
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="sum to zero"):
        await sql.write_batch(conn, [deposit], one_sided, [], [], [])
    await conn.execute("ROLLBACK TO SAVEPOINT before")
    missing = uuid.uuid4()  # balanced postings of a transfer that is not there
    orphans = [
        Posting(missing, wallet, "USD", 100, balance, balance + 100),
        Posting(missing, wallet, "USD", -100, balance + 100, balance),
    ]
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await sql.write_batch(conn, [], orphans, [], [], [])
    await conn.execute("ROLLBACK TO SAVEPOINT before")
    assert await conn.fetchval("SELECT count(*) FROM transfers WHERE id = $1", deposit.id) == 0


async def test_a_later_posting_to_a_balanced_transfer_is_rejected(
    api: Api, conn: asyncpg.Connection
) -> None:
    """A transfer's postings are written once: a one-sided posting added later unbalances it."""
    transfer_id, wallet_id = await _a_transfer_with_entries(api)
    balance = await conn.fetchval("SELECT balance FROM wallets WHERE id = $1", uuid.UUID(wallet_id))
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="sum to zero"):
        await conn.execute(
            "INSERT INTO entries (transfer_id, wallet_id, currency, amount, balance_before,"
            " balance_after) VALUES ($1, $2, 'USD', 5, $3::int8, $3::int8 + 5)",
            uuid.UUID(transfer_id),
            uuid.UUID(wallet_id),
            balance,
        )


async def test_negative_user_balance_is_rejected(api: Api, conn: asyncpg.Connection) -> None:
    _, wallet = await api.funded_wallet("1.00")
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(
            "UPDATE wallets SET balance = -1, available_balance = -1 WHERE id = $1",
            uuid.UUID(wallet["id"]),
        )


async def test_transfer_amount_must_be_positive_and_immutable(
    api: Api, conn: asyncpg.Connection
) -> None:
    transfer_id, _ = await _a_transfer_with_entries(api)
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="immutable"):
        async with conn.transaction():  # a savepoint: the outer transaction stays usable
            await conn.execute(
                "UPDATE transfers SET amount = 1 WHERE id = $1", uuid.UUID(transfer_id)
            )
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="cannot move"):
        async with conn.transaction():
            await conn.execute(
                "UPDATE transfers SET status = 'failed', failure_code = 'x' WHERE id = $1",
                uuid.UUID(transfer_id),
            )
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(
            "INSERT INTO transfers (id, type, status, amount, currency, initiated_by)"
            " VALUES ($1, 'deposit', 'failed', 0, 'USD', 'test')",
            uuid.uuid4(),
        )


async def test_batch_outcomes_equal_sequential_execution(api: Api, container: Container) -> None:
    """The write primitive takes a batch; one overdraft fails alone, order within a wallet holds."""
    _, a = await api.funded_wallet("10.00")
    _, b = await api.funded_wallet(amount="")
    a_id, b_id = uuid.UUID(a["id"]), uuid.UUID(b["id"])

    def move(src: uuid.UUID, dst: uuid.UUID, amount: int) -> WriteRequest:
        return WriteRequest(
            TransferCommand(uuid.uuid4(), TransferType.TRANSFER, src, dst, amount, "USD", "test")
        )

    ledger: Ledger = container.ledger
    outcomes = await ledger.execute(
        [move(a_id, b_id, 600), move(a_id, b_id, 600), move(b_id, a_id, 100), move(a_id, b_id, 500)]
    )
    statuses = [o.transfer.status.value for o in outcomes if isinstance(o, Executed)]
    # 1000 -> 400 | 400 < 600 fails | b pays back 100 -> a 500 | a pays 500 -> a 0
    assert statuses == ["completed", "failed", "completed", "completed"]
    assert await api.balance(a["id"]) == "0.00"
    assert await api.balance(b["id"]) == "10.00"


@pytest.fixture
def scratch_database(pg_server_url: str) -> Iterator[str]:
    with fresh_database(pg_server_url, prefix="steadypay_scratch") as url:
        yield url


async def test_audit_detects_a_tampered_balance(scratch_database: str) -> None:
    """`ledger check` can fail: tamper with a balance behind the ledger's back."""
    connection = await asyncpg.connect(scratch_database)
    try:
        assert (await audit(connection)).ok
        await connection.execute(
            "INSERT INTO users (id, name, email, api_key_hash) VALUES ($1, 'x', 'x@x.io', $2)",
            uuid.uuid4(),
            b"\0" * 32,
        )
        user_id = await connection.fetchval("SELECT id FROM users")
        await connection.execute(
            "INSERT INTO wallets (id, kind, user_id, currency, balance, available_balance)"
            " VALUES ($1, 'user', $2, 'USD', 500, 500)",
            uuid.uuid4(),
            user_id,
        )
        report = await audit(connection)
    finally:
        await connection.close()
    failed = {c.name for c in report.checks if not c.ok}
    assert failed == {
        "currency_sums_to_zero",
        "balance_equals_entries",
        "wallets_equal_deposits_minus_withdrawals",
    }
