"""Group commit on real PostgreSQL: concurrent requests share transactions, each with the
outcome sequential execution in arrival order gives; one request's held key fails only it."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from uuid import UUID

import asyncpg
import httpx
import pytest

from steadypay import bootstrap
from steadypay.api.responses import render_transfer_outcome
from steadypay.db.pool import create_database
from steadypay.errors import IdempotencyKeyInUse
from steadypay.idempotency.domain import IdempotencyClaim, fingerprint
from steadypay.ledger.domain import TransferCommand, TransferStatus, TransferType
from steadypay.ledger.service import Executed, Ledger, WriteRequest
from tests.api_client import Api


def transfer(source: str, target: str, amount: int, key: str | None = None) -> WriteRequest:
    command = TransferCommand(
        id=uuid.uuid4(),
        type=TransferType.TRANSFER,
        from_wallet_id=UUID(source),
        to_wallet_id=UUID(target),
        amount=amount,
        currency="USD",
        initiated_by="admin",
    )
    claim = IdempotencyClaim("admin", key or str(uuid.uuid4()), fingerprint("t", {"a": amount}))
    return WriteRequest(command, claim, render_transfer_outcome)


def status(outcome: object) -> TransferStatus:
    assert isinstance(outcome, Executed)
    return outcome.transfer.status


async def test_concurrent_api_transfers_share_transactions_and_stay_exact(
    api: Api, container: bootstrap.Container
) -> None:
    group = container.ledger.group
    assert group is not None
    before = dataclasses.replace(group.stats)
    _, source = await api.funded_wallet("100.00")
    _, target = await api.funded_wallet("")
    body = {"from_wallet_id": source["id"], "to_wallet_id": target["id"], "currency": "USD"}
    results = await asyncio.gather(
        *(api.post("/v1/transfers", body | {"amount": "1.50"}, idem=str(uuid.uuid4()))
          for _ in range(120))
    )  # fmt: skip
    statuses = [r.status_code for r in results]
    assert statuses.count(201) == 66  # 100.00 / 1.50: the 67th and later are refused
    assert statuses.count(422) == 54
    assert await api.balance(source["id"]) == "1.00"
    assert await api.balance(target["id"]) == "99.00"
    submissions = group.stats.submissions - before.submissions
    batches = group.stats.batches - before.batches
    assert submissions >= 120
    assert batches < submissions  # transactions were shared


async def test_a_batch_keeps_arrival_order_within_a_wallet(
    api: Api, container: bootstrap.Container
) -> None:
    _, source = await api.funded_wallet("10.00")
    _, target = await api.funded_wallet("")
    ledger = Ledger(container.db, max_concurrent_transactions=1)
    assert ledger.group is not None
    first = asyncio.create_task(ledger.execute([transfer(source["id"], target["id"], 100)]))
    await asyncio.sleep(0)  # the first batch is running: the next two queue behind it
    eight = asyncio.create_task(ledger.execute([transfer(source["id"], target["id"], 800)]))
    five = asyncio.create_task(ledger.execute([transfer(source["id"], target["id"], 500)]))
    [a], [b], [c] = await asyncio.gather(first, eight, five)
    assert [status(a), status(b), status(c)] == [
        TransferStatus.COMPLETED,
        TransferStatus.COMPLETED,
        TransferStatus.FAILED,  # 1.00 left after 1.00 and 8.00: as if one by one, in order
    ]
    assert ledger.group.stats.batches == 2
    assert await api.balance(source["id"]) == "1.00"


async def test_a_key_held_elsewhere_fails_only_its_own_request(
    api: Api, container: bootstrap.Container, database_url: str
) -> None:
    _, source = await api.funded_wallet("10.00")
    _, target = await api.funded_wallet("")
    options = dataclasses.replace(
        bootstrap.pool_options(container.settings), lock_timeout_ms=300, max_size=4, min_size=1
    )
    db = await create_database(database_url, options)
    holder = await asyncpg.connect(database_url)
    try:
        ledger = Ledger(db, max_concurrent_transactions=1)
        assert ledger.group is not None
        held = transfer(source["id"], target["id"], 100, key="held-" + uuid.uuid4().hex)
        assert held.claim is not None
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute(
            "INSERT INTO idempotency_keys (principal, key, fingerprint, expires_at) "
            "VALUES ($1, $2, $3, now() + interval '1 hour')",
            held.claim.principal,
            held.claim.key,
            held.claim.fingerprint,
        )
        blocker = asyncio.create_task(ledger.execute([transfer(source["id"], target["id"], 1)]))
        await asyncio.sleep(0)
        calls = [
            asyncio.create_task(ledger.execute([r]))
            for r in (transfer(source["id"], target["id"], 200), held,
                      transfer(source["id"], target["id"], 300))
        ]  # fmt: skip
        await blocker
        results = await asyncio.gather(*calls, return_exceptions=True)
        await transaction.rollback()
        assert isinstance(results[1], IdempotencyKeyInUse)
        assert [status(r[0]) for r in (results[0], results[2])] == [  # type: ignore[index]
            TransferStatus.COMPLETED,
            TransferStatus.COMPLETED,
        ]
        assert ledger.group.stats.isolated == 1
        assert await api.balance(target["id"]) == "5.01"
    finally:
        await holder.close()
        await db.close()


async def test_without_group_commit_each_call_is_its_own_transaction(
    container: bootstrap.Container,
) -> None:
    assert Ledger(container.db, group_commit=False).group is None
    with pytest.raises(ValueError, match="at least 1"):
        Ledger(container.db, max_concurrent_transactions=0)


async def test_a_stored_error_carries_its_own_request_id_in_a_shared_transaction(
    api: Api, container: bootstrap.Container
) -> None:
    """A batch runs in no one request's context: each failed transfer's stored (and replayed)
    error names the request that sent it, not the one whose call started the batch."""
    group = container.ledger.group
    assert group is not None
    before = dataclasses.replace(group.stats)
    _, source = await api.funded_wallet("1.00")
    _, target = await api.funded_wallet("")
    body = {"from_wallet_id": source["id"], "to_wallet_id": target["id"], "currency": "USD",
            "amount": "1.00"}  # fmt: skip

    async def send(i: int, key: str) -> httpx.Response:
        headers = api.auth() | {"Idempotency-Key": key, "X-Request-Id": f"req-own-{i:04d}"}
        return await api.http.post("/v1/transfers", json=body, headers=headers)

    keys = [str(uuid.uuid4()) for _ in range(60)]
    results = await asyncio.gather(*(send(i, k) for i, k in enumerate(keys)))
    assert group.stats.batches - before.batches < group.stats.submissions - before.submissions
    failed = [(i, r) for i, r in enumerate(results) if r.status_code == 422]
    assert len(failed) == 59
    for i, r in failed:
        assert r.json()["error"]["request_id"] == f"req-own-{i:04d}"
    i, first = failed[-1]
    replay = await send(1000, keys[i])
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == first.content  # the first request's id, byte for byte
