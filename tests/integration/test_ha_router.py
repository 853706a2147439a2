"""The database router on a real three-member Patroni cluster, through the payment API.

- writes go to the primary through the multi-host URL; staleness-tolerant reads (a wallet's
  entries, transfer lists) go to the replicas, counted by the router;
- read-your-writes: with replay paused on every replica (replication delayed as far as reads
  are concerned), a client that sends back the write's consistency token always sees its
  write — the router sends its reads to the primary — while reads without the token are still
  served by the (stale) replicas;
- after the primary's postmaster is killed, the API's pools follow the promoted primary and
  payments resume by themselves.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from steadypay import bootstrap
from steadypay.bootstrap.api import create_app
from steadypay.config import Settings
from steadypay.db.migrate import upgrade
from steadypay.db.replicated import ReplicatedDatabase
from steadypay.db.router import CONSISTENCY_TOKEN_HEADER
from steadypay.ha import SUPERUSER, PatroniCluster
from tests.api_client import Api, new_key
from tests.integration.conftest import ADMIN_KEY, serve


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PatroniCluster]:
    ha = PatroniCluster(Path(tmp_path_factory.mktemp("ha-router")) / "cluster", members=3)
    try:
        ha.start(timeout=120)
        upgrade(ha.dsn())
        yield ha
    finally:
        ha.stop()


@pytest.fixture(scope="module")
def replicated_settings(settings: Settings, cluster: PatroniCluster) -> Settings:
    members = [m.name for m in cluster.status()]
    return settings.model_copy(
        update={
            "database_url": SecretStr(cluster.dsn()),
            "database_read_urls": tuple(SecretStr(cluster.member_dsn(m)) for m in members),
            # replay is paused for a few seconds below: a large bound keeps the paused
            # replicas eligible, so the token alone must keep the client's reads fresh
            "db_replica_max_lag_ms": 60_000,
            "db_connect_timeout_s": 2.0,
            "db_acquire_timeout_s": 3.0,
        }
    )


@pytest.fixture(scope="module")
async def replicated(
    replicated_settings: Settings,
) -> AsyncIterator[tuple[Api, bootstrap.Container]]:
    container = await bootstrap.build(replicated_settings)
    assert isinstance(container.db, ReplicatedDatabase)
    try:
        async with (
            serve(create_app(replicated_settings, container)) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as http,
        ):
            yield Api(http, ADMIN_KEY), container
    finally:
        await container.close()


def decisions(target_is_primary: bool) -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "steadypay_db_router_decisions":
            for sample in metric.samples:
                if sample.name.endswith("_total") and (
                    (sample.labels["target"] == "primary") == target_is_primary
                ):
                    total += sample.value
    return total


async def _on_replicas(cluster: PatroniCluster, statement: str) -> int:
    """Run ``statement`` on every standby (Patroni calls a synchronous one ``sync_standby``,
    not ``replica``: ask PostgreSQL instead); returns on how many it ran."""
    ran = 0
    for member in cluster.status():
        conn = await asyncpg.connect(cluster.member_dsn(member.name, user=SUPERUSER))
        try:
            if await conn.fetchval("SELECT pg_is_in_recovery()"):
                await conn.execute(statement)
                ran += 1
        finally:
            await conn.close()
    return ran


async def _caught_up(router: ReplicatedDatabase, within_s: float = 15.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        await router.probe_once()
        now = time.monotonic()
        standbys = [r for r in router.replicas if r.up and r.standby]
        if len(standbys) >= 2 and all((r.lag_s(now) or 99) < 1 for r in standbys):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"replicas not caught up: {router.replicas}")


async def test_staleness_tolerant_reads_go_to_the_replicas(
    replicated: tuple[Api, bootstrap.Container],
) -> None:
    api, container = replicated
    assert isinstance(container.db, ReplicatedDatabase)
    _, wallet = await api.funded_wallet("5.00")
    await _caught_up(container.db)
    before = decisions(target_is_primary=False)
    for _ in range(10):
        r = await api.get(f"/v1/wallets/{wallet['id']}/entries")
        assert r.status_code == 200, r.text
    assert decisions(target_is_primary=False) - before >= 10  # served by replicas


async def test_a_client_that_sends_its_token_reads_its_writes_while_replicas_lag(
    replicated: tuple[Api, bootstrap.Container], cluster: PatroniCluster
) -> None:
    api, container = replicated
    assert isinstance(container.db, ReplicatedDatabase)
    _, wallet = await api.funded_wallet("1.00")
    await _caught_up(container.db)
    assert await _on_replicas(cluster, "SELECT pg_wal_replay_pause()") == 2
    try:
        seen_with_token = 0
        stale_without_token = 0
        routed_to_replica = 0
        for round_no in range(5):
            deposit = await api.post(
                "/v1/deposits",
                {"wallet_id": wallet["id"], "amount": "1.00", "currency": "USD"},
                idem=new_key(),
            )
            assert deposit.status_code == 201, deposit.text
            token = deposit.headers[CONSISTENCY_TOKEN_HEADER]
            expected = round_no + 2  # the first deposit plus one per round
            await container.db.probe_once()
            fresh = await api.http.get(
                f"/v1/wallets/{wallet['id']}/entries",
                params={"limit": 100},
                headers=api.auth() | {CONSISTENCY_TOKEN_HEADER: token},
            )
            assert fresh.status_code == 200, fresh.text
            seen_with_token += len(fresh.json()["data"]) == expected
            before = decisions(target_is_primary=False)
            stale = await api.get(f"/v1/wallets/{wallet['id']}/entries", limit=100)
            routed_to_replica += decisions(target_is_primary=False) - before >= 1
            stale_without_token += len(stale.json()["data"]) < expected
        assert seen_with_token == 5  # always its own writes
        assert routed_to_replica == 5  # without the token, the (paused) replicas served
        # ... and they were stale (a standby asked to pause may still replay the record in
        # flight, so not necessarily every time)
        assert stale_without_token >= 1
    finally:
        await _on_replicas(cluster, "SELECT pg_wal_replay_resume()")


async def test_a_malformed_token_is_a_validation_error(
    replicated: tuple[Api, bootstrap.Container],
) -> None:
    api, _ = replicated
    r = await api.http.get(
        "/v1/transfers", headers=api.auth() | {CONSISTENCY_TOKEN_HEADER: "not-a-position"}
    )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == CONSISTENCY_TOKEN_HEADER


async def test_payments_resume_on_the_promoted_primary_after_a_kill(
    replicated: tuple[Api, bootstrap.Container], cluster: PatroniCluster
) -> None:
    api, _ = replicated
    _, source = await api.funded_wallet("50.00")
    _, target = await api.funded_wallet("")
    old = cluster.primary().name
    cluster.kill_postmaster(old)
    killed = time.monotonic()
    acknowledged = 0
    outcomes: list[int] = []
    recovered_after = None
    while time.monotonic() - killed < 45 and acknowledged < 5:
        key = new_key()
        for _ in range(20):  # the same key until a definite answer
            r = await api.transfer(source["id"], target["id"], "1.00", idem=key)
            outcomes.append(r.status_code)
            assert r.status_code != 500, r.text
            if r.status_code == 201:
                acknowledged += 1
                recovered_after = recovered_after or time.monotonic() - killed
                break
            assert r.status_code in (503, 409), r.text
            await asyncio.sleep(0.2)
    assert acknowledged == 5, outcomes
    assert cluster.primary().name != old
    assert await api.balance(source["id"]) == "45.00"
    print(json.dumps({"recovered_after_s": recovered_after, "answers": outcomes}))
