"""The bank workload against the real API (over a fault proxy that resets connections), and
the checker: clean on an honest run, loud on every kind of lie."""

from __future__ import annotations

import dataclasses
import uuid
from urllib.parse import urlsplit

import asyncpg
import pytest

from steadypay.chaos.bank import BankClient, BankOptions, BankRun, run_workload
from steadypay.chaos.checker import check
from steadypay.chaos.proxy import FaultProxy, ResetPeer
from tests.integration.conftest import ADMIN_KEY

OPTIONS = BankOptions(
    wallets=5,
    clients=6,
    duration_s=2.0,
    initial_minor=5_000,
    max_amount_minor=3_000,  # big enough that some transfers fail for insufficient funds
    duplicate_share=0.1,
    reuse_share=0.05,
    request_timeout_s=2.0,
    give_up_s=0.3,  # give up fast, so that some operations end unknown
    seed=11,
)


@pytest.fixture(scope="module")
async def honest_run(base_url: str, database_url: str) -> tuple[BankRun, str]:
    parts = urlsplit(base_url)
    assert parts.hostname is not None
    assert parts.port is not None
    direct = BankClient(base_url, ADMIN_KEY, OPTIONS)
    try:
        setup = await direct.set_up(uuid.uuid4().hex[:10])
    finally:
        await direct.aclose()
    async with FaultProxy(parts.hostname, parts.port, seed=3) as proxy:
        # a third of the connections are reset 30 ms after they open: requests die mid-flight
        proxy.add("resets", ResetPeer(timeout_ms=30, toxicity=0.3))
        client = BankClient(f"http://127.0.0.1:{proxy.port}", ADMIN_KEY, OPTIONS)
        try:
            run = await run_workload(client, OPTIONS, setup=setup)
        finally:
            await client.aclose()
    return run, base_url


async def verdict_of(run: BankRun, base_url: str, database_url: str) -> dict[str, object]:
    client = BankClient(base_url, ADMIN_KEY, OPTIONS)
    conn = await asyncpg.connect(database_url)
    try:
        return (await check(client, run, conn, resolve_give_up_s=10)).json()
    finally:
        await conn.close()
        await client.aclose()


async def test_an_honest_run_through_connection_resets_is_clean(
    honest_run: tuple[BankRun, str], database_url: str
) -> None:
    run, base_url = honest_run
    verdict = await verdict_of(run, base_url, database_url)
    counts = verdict["counts"]
    assert isinstance(counts, dict)
    assert counts["acknowledged"] > 20, counts
    assert counts["failed"] > 0, counts  # insufficient funds and refused reuses
    assert counts["duplicates"] > 0, counts
    assert counts["reuses"] > 0, counts
    assert verdict["ok"], verdict["violations"]


async def test_the_checker_sees_a_lost_an_invented_and_a_misreported_transfer(
    honest_run: tuple[BankRun, str], database_url: str
) -> None:
    run, base_url = honest_run
    ops = [dataclasses.replace(op) for op in run.ops]
    acked = [op for op in ops if op.outcome == "ok" and op.kind == "transfer"]
    # 1. the history claims an acknowledged transfer the ledger never saw (a lost payment)
    ghost = dataclasses.replace(acked[0], op=10_000, key=f"bank-ghost-{uuid.uuid4()}")
    # 2. an acknowledgement with another amount than the ledger booked
    acked[1].amount_minor += 1
    # 3. an operation missing from the history: the ledger has a transfer nobody asked for
    dropped = acked[2]
    ops.remove(dropped)
    lied = BankRun(run.setup, [*ops, ghost], run.started_at, run.duration_s)
    verdict = await verdict_of(lied, base_url, database_url)
    assert not verdict["ok"]
    found = {(v["check"], tuple(v["ops"])) for v in verdict["violations"]}  # type: ignore[attr-defined, index]
    assert ("acknowledged_exist_once", (ghost.op,)) in found
    assert ("acknowledged_exist_once", (acked[1].op,)) in found
    messages = " ".join(v["message"] for v in verdict["violations"])  # type: ignore[attr-defined, index]
    assert f"key {dropped.key} that no operation asked for" in messages


async def test_a_second_effect_for_one_key_is_a_violation(
    honest_run: tuple[BankRun, str], database_url: str
) -> None:
    run, base_url = honest_run
    victim = next(op for op in run.ops if op.outcome == "ok" and op.kind == "transfer")
    client = BankClient(base_url, ADMIN_KEY, OPTIONS)
    try:
        # the same payment booked again under another idempotency key, same description
        await client.must(
            "POST",
            "/v1/transfers",
            json={
                "from_wallet_id": victim.to_wallet,
                "to_wallet_id": victim.from_wallet,
                "amount": "0.01",
                "currency": "USD",
                "description": f"bank:{victim.key}",
            },
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
    finally:
        await client.aclose()
    verdict = await verdict_of(run, base_url, database_url)
    checks = {v["check"] for v in verdict["violations"]}  # type: ignore[attr-defined, index]
    assert "one_effect_per_key" in checks
    assert "model_balances" in checks
