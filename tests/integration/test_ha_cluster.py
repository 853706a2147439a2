"""A real three-member PostgreSQL cluster under Patroni (Raft DCS) on loopback.

One cluster serves the whole module (it takes seconds to start); the tests run in file order
and each begins by waiting for a healthy cluster, so a failover test leaves a state the next
one can start from. Every wait is bounded; a fault the cluster does not recover from fails
the test that caused it, naming the member states.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import asyncpg
import httpx
import psutil
import pytest

from steadypay.db.migrate import upgrade
from steadypay.ha import MemberStatus, PatroniCluster
from steadypay.ha.status import describe
from steadypay.monitor.checks import PatroniClusterCheck
from steadypay.monitor.domain import ComponentResult, Status
from tests.process_scan import processes_mentioning

# During a failover, every host may be up but none read-write yet.
NoPrimary = asyncpg.exceptions.TargetServerAttributeNotMatched

PROMOTION_BOUND_S = 10.0  # a killed primary postmaster: Patroni does it in about 2 s
NODE_LOSS_BOUND_S = 40.0  # Patroni (ttl 20 s) and postmaster killed: about 20 s
REJOIN_BOUND_S = 60.0
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PatroniCluster]:
    data_dir = tmp_path_factory.mktemp("ha") / "cluster"
    cluster = PatroniCluster(data_dir)
    try:
        cluster.start(timeout=120)
        yield cluster
    finally:
        cluster.stop(timeout=60)
        # PostgreSQL's processes name the data directory (-D), Patroni its configuration.
        leftovers = processes_mentioning(data_dir)
        assert not leftovers, f"processes left after stop(): {leftovers}"


async def query(dsn: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def eventually(what: str, attempt: Callable[[], Awaitable[Any]], within: float) -> Any:
    """Retry ``attempt`` until it returns a truthy value or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        try:
            if result := await attempt():
                return result
            last = result
        except (
            OSError,
            TimeoutError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            NoPrimary,
        ) as exc:
            last = exc
        await asyncio.sleep(0.1)
    pytest.fail(f"{what}: not within {within:g} s (last: {last!r})")


async def write_marker(dsn: str) -> str:
    """Commit a fresh row through ``dsn``; its value."""
    marker = secrets.token_hex(8)
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS ha_markers (v text PRIMARY KEY)")
        await conn.execute("INSERT INTO ha_markers VALUES ($1)", marker)
    finally:
        await conn.close()
    return marker


async def has_marker(dsn: str, marker: str) -> bool:
    found = await query(dsn, "SELECT count(*) FROM ha_markers WHERE v = $1", marker)
    return bool(found == 1)


def by_name(statuses: list[MemberStatus]) -> dict[str, MemberStatus]:
    return {s.name: s for s in statuses}


def caught_up(cluster: PatroniCluster, within: float) -> list[MemberStatus]:
    """The statuses once every replica replays within 1 MiB of the primary (replaying
    the CREATE DATABASE of start() takes a moment)."""
    deadline = time.monotonic() + within
    while True:
        statuses = cluster.wait_ready(within)
        lags = [s.lag_bytes for s in statuses if s.role == "replica"]
        if all(lag is not None and lag < MIB for lag in lags) or time.monotonic() > deadline:
            return statuses
        time.sleep(0.1)


def test_status_lists_one_primary_and_two_streaming_replicas(cluster: PatroniCluster) -> None:
    statuses = caught_up(cluster, 15)

    assert sorted(str(s.role) for s in statuses) == ["primary", "replica", "replica"], statuses
    primary = cluster.primary()
    assert primary.state == "running"
    assert primary.lag_bytes == 0
    for s in statuses:
        assert s.postmaster_pid is not None, s
        assert s.patroni_pid is not None, s
        os.kill(s.postmaster_pid, 0)
        os.kill(s.patroni_pid, 0)
        if s.role == "replica":
            assert s.state == "streaming", s
            assert s.synchronous, f"{s.name} is not in the synchronous quorum: {statuses}"
            assert s.timeline == primary.timeline, statuses
            assert s.lag_bytes is not None, s
            assert s.lag_bytes < MIB, s
    ports = [p for s in statuses for p in (s.pg_port, s.rest_port, s.raft_port)]
    assert len(set(ports)) == 9, ports


def rest_urls(cluster: PatroniCluster) -> list[str]:
    return [f"http://127.0.0.1:{spec.rest_port}" for spec in cluster.layout.members]


async def monitor_view(cluster: PatroniCluster) -> ComponentResult:
    async with httpx.AsyncClient(trust_env=False) as http:
        return await PatroniClusterCheck(http, rest_urls(cluster), 2.0)()


async def test_the_monitor_reports_the_primary_patroni_names(cluster: PatroniCluster) -> None:
    caught_up(cluster, 15)

    result = await monitor_view(cluster)

    assert result.status is Status.PASS, result
    assert result.observed["primary"] == cluster.primary().name
    roles = sorted(m["role"] for m in result.observed["members"])
    assert roles == ["primary", "replica", "replica"], result.observed
    assert all(m["state"] in ("running", "streaming") for m in result.observed["members"])


def test_members_listen_on_loopback_only(cluster: PatroniCluster) -> None:
    listening = {}
    for s in cluster.wait_ready(60):
        for pid in (s.patroni_pid, s.postmaster_pid):
            assert pid is not None, s
            for c in psutil.Process(pid).net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    listening[(c.laddr.ip, c.laddr.port)] = s.name
    expected = {
        ("127.0.0.1", p) for s in cluster.status() for p in (s.pg_port, s.rest_port, s.raft_port)
    }
    assert set(listening) == expected, listening


async def test_the_multi_host_dsn_reaches_the_primary_and_migrates(
    cluster: PatroniCluster,
) -> None:
    cluster.wait_ready(60)
    primary = cluster.primary()
    dsn = cluster.dsn()
    assert "target_session_attrs=read-write" in dsn

    await asyncio.to_thread(upgrade, dsn)

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        assert await conn.fetchval("SELECT inet_server_port()") == primary.pg_port
        assert await conn.fetchval("SELECT pg_is_in_recovery()") is False
        assert await conn.fetchval("SELECT current_user") == "steadypay"
        assert await conn.fetchval("SELECT version_num FROM alembic_version") is not None
    finally:
        await conn.close()


async def test_a_commit_waits_for_a_standby_and_reaches_both(cluster: PatroniCluster) -> None:
    statuses = cluster.wait_ready(60)
    primary = cluster.primary()
    replicas = [s for s in statuses if s.role == "replica"]
    replica_dsns = cluster.replica_dsns()
    assert len(replica_dsns) == 2

    # As the superuser: pg_stat_replication hides its state from others.
    admin = await asyncpg.connect(cluster.dsn(user="postgres"), timeout=5)
    try:
        names = await admin.fetchval("SHOW synchronous_standby_names")
        senders = await admin.fetch(
            "SELECT application_name, state, sync_state FROM pg_stat_replication"
        )
    finally:
        await admin.close()
    assert names.startswith("ANY 1 ("), names
    assert {(r["application_name"], r["state"], r["sync_state"]) for r in senders} == {
        (s.name, "streaming", "quorum") for s in replicas
    }

    conn = await asyncpg.connect(cluster.dsn(), timeout=5)
    try:
        # remote_apply: the commit returns once a standby has applied it, not only flushed.
        await conn.execute("SET synchronous_commit = remote_apply")
        await conn.execute("CREATE TABLE IF NOT EXISTS ha_markers (v text PRIMARY KEY)")
        marker = secrets.token_hex(8)
        await conn.execute("INSERT INTO ha_markers VALUES ($1)", marker)
    finally:
        await conn.close()

    seen_at_once = [await has_marker(dsn, marker) for dsn in replica_dsns]
    assert any(seen_at_once), "acknowledged, yet no standby had applied the commit"
    for dsn in replica_dsns:
        assert await eventually("the commit on every replica", partial(has_marker, dsn, marker), 5)
    assert await query(cluster.member_dsn(primary.name), "SELECT pg_is_in_recovery()") is False


@dataclass(frozen=True)
class Failover:
    old_primary: MemberStatus
    new_primary: str
    seconds_to_first_write: float
    acknowledged_before: str


@pytest.fixture(scope="module")
async def postmaster_failover(cluster: PatroniCluster) -> Failover:
    """Kill the primary's postmaster once; time it until a write through the multi-host DSN
    succeeds again."""
    cluster.wait_ready(60)
    old = cluster.primary()
    dsn = cluster.dsn()
    before = await write_marker(dsn)
    killed_at = time.monotonic()
    cluster.kill_postmaster(old.name)
    await eventually("a write through the DSN", lambda: write_marker(dsn), PROMOTION_BOUND_S)
    seconds = time.monotonic() - killed_at
    return Failover(old, cluster.primary().name, seconds, before)


async def test_killing_the_primary_postmaster_promotes_a_replica(
    cluster: PatroniCluster, postmaster_failover: Failover
) -> None:
    fo = postmaster_failover
    assert fo.new_primary != fo.old_primary.name
    assert fo.seconds_to_first_write <= PROMOTION_BOUND_S
    new = by_name(cluster.status())[fo.new_primary]
    assert new.timeline is not None
    assert fo.old_primary.timeline is not None
    assert new.timeline > fo.old_primary.timeline
    dsn = cluster.dsn()
    assert await query(dsn, "SELECT inet_server_port()") == new.pg_port
    assert await has_marker(dsn, fo.acknowledged_before), "an acknowledged commit was lost"


async def test_the_old_primary_rejoins_as_a_replica(
    cluster: PatroniCluster, postmaster_failover: Failover
) -> None:
    old = postmaster_failover.old_primary
    statuses = by_name(cluster.wait_ready(REJOIN_BOUND_S))

    rejoined = statuses[old.name]
    everyone = describe(list(statuses.values()))
    assert rejoined.role == "replica", everyone
    assert rejoined.state == "streaming", everyone
    assert rejoined.timeline == statuses[postmaster_failover.new_primary].timeline
    assert rejoined.postmaster_pid != old.postmaster_pid
    marker = await write_marker(cluster.dsn())
    old_dsn = cluster.member_dsn(old.name, target_session_attrs="standby")
    assert await eventually(
        "a new commit on the old primary", lambda: has_marker(old_dsn, marker), 5
    )


async def test_switchover_moves_the_primary(cluster: PatroniCluster) -> None:
    cluster.wait_ready(60)
    old = cluster.primary()
    before = await write_marker(cluster.dsn())

    new = cluster.switchover()

    assert new != old.name
    statuses = by_name(cluster.wait_ready(REJOIN_BOUND_S))
    assert statuses[old.name].role == "replica"
    dsn = cluster.dsn()
    assert await query(dsn, "SELECT inet_server_port()") == statuses[new].pg_port
    assert await has_marker(dsn, before)


async def test_failover_promotes_the_named_candidate(cluster: PatroniCluster) -> None:
    statuses = cluster.wait_ready(60)
    candidate = next(s.name for s in statuses if s.role == "replica")

    assert cluster.failover(candidate) == candidate

    assert by_name(cluster.wait_ready(REJOIN_BOUND_S))[candidate].role == "primary"
    port = cluster.layout.member(candidate).pg_port
    assert await query(cluster.dsn(), "SELECT inet_server_port()") == port


async def test_a_lost_node_is_replaced_and_rejoins_when_restarted(cluster: PatroniCluster) -> None:
    """Patroni's crash recovery of the old primary ends with a checkpoint the new timeline
    does not have, so it rejoins through pg_rewind: this is where pg_rewind is shown to work
    here (binaries, superuser over loopback, wal_log_hints). A new base backup is never
    allowed to stand in for it."""
    cluster.wait_ready(60)
    old = cluster.primary()
    dsn = cluster.dsn()
    before = await write_marker(dsn)
    patroni_log = cluster.paths(old.name).log_dir / "patroni.log"
    log_offset = patroni_log.stat().st_size

    patroni_pid, postmaster_pid = cluster.kill_node(old.name)

    assert (patroni_pid, postmaster_pid) == (old.patroni_pid, old.postmaster_pid)
    await eventually(
        "a write after losing the primary's node", lambda: write_marker(dsn), NODE_LOSS_BOUND_S
    )
    assert await has_marker(dsn, before)
    assert cluster.primary().name != old.name
    seen = await monitor_view(cluster)
    assert seen.status is Status.WARN, seen
    assert seen.observed["primary"] == cluster.primary().name
    assert [m["role"] for m in seen.observed["members"]].count("unreachable") == 1, seen

    cluster.restart_member(old.name, timeout=REJOIN_BOUND_S)

    statuses = by_name(cluster.wait_ready(REJOIN_BOUND_S))
    assert statuses[old.name].role == "replica", describe(list(statuses.values()))
    with patroni_log.open("rb") as log:
        log.seek(log_offset)
        since_the_kill = log.read().decode(errors="replace")
    assert "running pg_rewind from" in since_the_kill, f"{old.name} rejoined without pg_rewind"
    marker = await write_marker(dsn)
    old_dsn = cluster.member_dsn(old.name, target_session_attrs="standby")
    assert await eventually(
        "a new commit on the old primary", lambda: has_marker(old_dsn, marker), 5
    )


async def test_a_second_start_reuses_the_running_members(cluster: PatroniCluster) -> None:
    before = {s.name: (s.patroni_pid, s.postmaster_pid) for s in cluster.wait_ready(60)}
    again = PatroniCluster(cluster.data_dir)
    try:
        statuses = await asyncio.to_thread(again.start, 60)
    finally:
        again.close()
    assert {s.name: (s.patroni_pid, s.postmaster_pid) for s in statuses} == before


async def test_the_cluster_restarts_on_its_own_data(cluster: PatroniCluster) -> None:
    cluster.wait_ready(60)
    marker = await write_marker(cluster.dsn())
    ports = cluster.layout

    cluster.stop(timeout=60)
    assert processes_mentioning(cluster.data_dir) == []
    cluster.start(timeout=120)

    assert cluster.layout == ports
    assert await has_marker(cluster.dsn(), marker)
