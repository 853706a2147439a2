"""The health monitor on the real database: the decision, the leader lease, the failover gate
(cool-down and ack), the canary through the real API, and the admin history."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from steadypay import bootstrap
from steadypay.config import Settings
from steadypay.db.pool import Database
from steadypay.ledger.audit import audit
from steadypay.monitor import repository as repo
from steadypay.monitor.actions import (
    ActionResult,
    CommandAction,
    FailoverAction,
    FailoverRequest,
)
from steadypay.monitor.canary import Canary, canary_email, canary_key
from steadypay.monitor.checks import (
    ApiHealthCheck,
    DatabaseCheck,
    DependenciesCheck,
    Dependency,
    NamedCheck,
)
from steadypay.monitor.domain import ComponentResult, Status
from steadypay.monitor.lease import LeaderLease
from steadypay.monitor.service import Monitor, MonitorConfig
from tests.api_client import Api


class Recorder:
    """A failover action that records its calls."""

    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[FailoverRequest] = []

    async def __call__(self, request: FailoverRequest) -> ActionResult:
        self.calls.append(request)
        return ActionResult("succeeded", {"recorded": len(self.calls)})


def scripted(statuses: Iterable[bool]) -> NamedCheck:
    """A check that passes or fails as scripted, round after round (then keeps failing)."""
    script = itertools.chain(statuses, itertools.repeat(False))

    async def check() -> ComponentResult:
        return ComponentResult("api", Status.PASS if next(script) else Status.FAIL, 0.0)

    return NamedCheck("api", check, 1.0)


def always_failing() -> NamedCheck:
    return scripted([])


def monitor(
    settings: Settings,
    db: Database,
    checks: Sequence[NamedCheck],
    action: FailoverAction,
    *,
    threshold: int = 3,
    recovery: int = 2,
    cooldown_s: float = 900.0,
    interval_s: float = 0.05,
) -> Monitor:
    return Monitor(
        config=MonitorConfig(
            monitor_id=f"test-{uuid.uuid4().hex[:8]}",
            interval_s=interval_s,
            failure_threshold=threshold,
            recovery_threshold=recovery,
            cooldown_s=cooldown_s,
        ),
        checks=checks,
        db=db,
        lease=LeaderLease(settings.require_database_url(), timeout_s=2.0),
        action=action,
    )


@pytest.fixture(autouse=True)
async def no_open_failover(container: bootstrap.Container) -> AsyncIterator[None]:
    """Each test starts and ends with no failover holding back the next (they share the DB)."""

    async def ack_all() -> None:
        async with container.db.connection() as conn:
            await conn.execute(
                "UPDATE monitor.failovers SET acknowledged_at = now(), acknowledged_by = 'test' "
                "WHERE acknowledged_at IS NULL"
            )

    await ack_all()
    yield
    await ack_all()


async def failovers_of(db: Database, monitor_id: str) -> list[repo.Failover]:
    return [f for f in await repo.recent_failovers(db, 100) if f.monitor_id == monitor_id]


# --- the decision --------------------------------------------------------------------------


async def test_fails_over_exactly_after_n_failed_rounds(
    settings: Settings, container: bootstrap.Container
) -> None:
    action = Recorder()
    m = monitor(settings, container.db, [always_failing()], action, threshold=3)
    try:
        first, second = await m.run_round(), await m.run_round()
        assert action.calls == []
        assert [first.decision, second.decision] == ["failing", "failing"]
        third = await m.run_round()
    finally:
        await m.lease.release()
    assert len(action.calls) == 1
    assert third.decision == "failover_triggered"
    assert third.role == "leader"
    assert third.consecutive_failures == 3
    [failover] = await failovers_of(container.db, m.config.monitor_id)
    assert third.failover_id == failover.id == action.calls[0].failover_id
    assert failover.outcome == "succeeded"
    assert failover.finished_at is not None
    assert "api fail" in failover.reason


async def test_an_exception_in_a_check_or_in_the_round_is_a_failed_round(
    settings: Settings, container: bootstrap.Container
) -> None:
    async def buggy() -> ComponentResult:
        raise ZeroDivisionError("a bug in a check")

    class FlakyLease(LeaderLease):
        """Leads on the first refresh, then raises an unexpected error."""

        calls = 0

        async def refresh(self):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls == 1:
                return await super().refresh()
            raise RuntimeError("a bug outside the checks")

    action = Recorder()
    m = monitor(settings, container.db, [NamedCheck("payments", buggy, 1.0)], action)
    await m.lease.release()
    m.lease = FlakyLease(settings.require_database_url(), timeout_s=2.0)
    try:
        rounds = [await m.run_round() for _ in range(3)]
    finally:
        await LeaderLease.release(m.lease)
    assert [r.healthy for r in rounds] == [False, False, False]
    assert "ZeroDivisionError" in rounds[0].components["payments"]["detail"]
    assert rounds[1].reason.startswith("round error: RuntimeError")
    assert rounds[2].decision == "failover_triggered"  # the last known leader still acts
    assert len(action.calls) == 1


async def test_one_healthy_round_does_not_reset_a_flapping_system(
    settings: Settings, container: bootstrap.Container
) -> None:
    action = Recorder()
    flapping = scripted([False, True, False, True, False])
    m = monitor(settings, container.db, [flapping], action, threshold=3, recovery=2)
    try:
        decisions = [(await m.run_round()).decision for _ in range(5)]
    finally:
        await m.lease.release()
    assert decisions == ["failing", "recovering", "failing", "recovering", "failover_triggered"]
    assert len(action.calls) == 1


async def test_two_monitors_on_one_database_fail_over_once(
    settings: Settings, container: bootstrap.Container, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"
    action = CommandAction(f'echo "$STEADYPAY_FAILOVER_ID" >> "{calls}"', timeout_s=5.0)
    monitors = [
        monitor(settings, container.db, [always_failing()], action, threshold=3) for _ in range(2)
    ]
    stop = asyncio.Event()
    runs = [asyncio.create_task(m.run(stop)) for m in monitors]
    ids = [m.config.monitor_id for m in monitors]

    async def rounds_of(monitor_id: str) -> list[repo.RoundRecord]:
        page, _ = await repo.rounds_page(container.db, limit=100, starting_after=None)
        return [r for r in page if r.monitor_id == monitor_id]

    try:
        for _ in range(200):  # both well past the threshold
            counts = [len(await rounds_of(i)) for i in ids]
            if min(counts) >= 8:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*runs)
    lines = calls.read_text().split()
    assert len(lines) == 1, lines
    by_monitor = {i: await rounds_of(i) for i in ids}
    roles = {i: {r.role for r in rounds} for i, rounds in by_monitor.items()}
    assert sorted(map(sorted, roles.values())) == [["follower"], ["leader"]]
    follower = next(i for i, r in roles.items() if r == {"follower"})
    assert "failover_deferred" in {r.decision for r in by_monitor[follower]}
    failovers = [f for i in ids for f in await failovers_of(container.db, i)]
    assert [str(f.id) for f in failovers] == lines
    assert failovers[0].outcome == "succeeded"
    assert failovers[0].detail["exit_code"] == 0


async def test_the_lease_passes_to_a_follower_when_the_leader_connection_drops(
    settings: Settings, container: bootstrap.Container
) -> None:
    url = settings.require_database_url()
    first, second = LeaderLease(url, timeout_s=2.0), LeaderLease(url, timeout_s=2.0)
    try:
        assert (await first.refresh()).leader
        assert not (await second.refresh()).leader
        assert (await first.refresh()).leader  # still held
        async with container.db.connection() as conn:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", first.backend_pid)
        for _ in range(50):  # the server ends the session (and frees the lock) promptly
            if (await second.refresh()).leader:
                break
            await asyncio.sleep(0.02)
        assert (await second.refresh()).leader
        state = await first.refresh()
        assert (state.leader, state.verified) == (False, True)
    finally:
        await first.release()
        await second.release()


# --- the failover gate ---------------------------------------------------------------------


async def test_cooldown_survives_a_restart_until_an_operator_acknowledges(
    settings: Settings, container: bootstrap.Container, api: Api
) -> None:
    action = Recorder()
    m = monitor(settings, container.db, [always_failing()], action, threshold=2)
    try:
        await m.run_round()
        triggered = await m.run_round()
    finally:
        await m.lease.release()
    assert triggered.decision == "failover_triggered"
    # A restarted monitor (fresh state) finds the failover in the table and holds back.
    restarted = monitor(settings, container.db, [always_failing()], action, threshold=2)
    try:
        decisions = [(await restarted.run_round()).decision for _ in range(3)]
        assert decisions == ["failing", "failover_suppressed", "failover_suppressed"]
        assert len(action.calls) == 1

        r = await api.post(f"/v1/admin/health/failovers/{triggered.failover_id}/ack", None)
        assert r.status_code == 200, r.text
        acked = r.json()
        assert acked["acknowledged_at"] is not None
        assert acked["acknowledged_by"] == "admin:env"
        assert acked["cooldown_until"] is None
        again = await api.post(f"/v1/admin/health/failovers/{triggered.failover_id}/ack", None)
        assert again.json()["acknowledged_at"] == acked["acknowledged_at"]  # idempotent

        after_ack = await restarted.run_round()
    finally:
        await restarted.lease.release()
    assert after_ack.decision == "failover_triggered"
    assert len(action.calls) == 2


async def test_the_cooldown_passes(settings: Settings, container: bootstrap.Container) -> None:
    action = Recorder()
    m = monitor(settings, container.db, [always_failing()], action, threshold=1, cooldown_s=0.3)
    try:
        assert (await m.run_round()).decision == "failover_triggered"
        assert (await m.run_round()).decision == "failover_suppressed"
        await asyncio.sleep(0.35)
        assert (await m.run_round()).decision == "failover_triggered"
    finally:
        await m.lease.release()
    assert len(action.calls) == 2


async def test_ack_of_a_missing_failover_is_404_and_needs_the_admin(api: Api) -> None:
    r = await api.post("/v1/admin/health/failovers/999999999/ack", None)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    user = await api.user()
    r = await api.post("/v1/admin/health/failovers/1/ack", None, key=user["api_key"])
    assert r.status_code == 403
    r = await api.get("/v1/admin/health/history", key=user["api_key"])
    assert r.status_code == 403


# --- the canary against the real API -------------------------------------------------------


async def test_the_canary_moves_only_its_own_money_and_leaves_the_ledger_clean(
    settings: Settings, container: bootstrap.Container, base_url: str, api: Api
) -> None:
    _, bystander = await api.funded_wallet("25.00")
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else ""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        canary = Canary(http, container.db, admin_key)
        results = [await canary() for _ in range(3)]
        accounts = canary.accounts
        assert accounts is not None
        start = [await api.balance(str(w)) for w in (accounts.wallet_a, accounts.wallet_b)]
        # Another monitor (or a restart) reuses the same accounts: created once.
        again = Canary(http, container.db, admin_key)
        assert (await again()).status is Status.PASS
        assert again.accounts == accounts
    assert [r.status for r in results] == [Status.PASS] * 3, [r.detail for r in results]
    assert len(results[0].observed["transfers"]) == 2
    assert await api.balance(bystander["id"]) == "25.00"
    assert [await api.balance(str(w)) for w in (accounts.wallet_a, accounts.wallet_b)] == start
    assert sorted(start) == ["0.00", "1.00"]  # topped up once, by 1.00
    async with container.db.connection() as conn:
        users = await conn.fetchval(
            "SELECT count(*) FROM users WHERE email = ANY($1)",
            [canary_email("a"), canary_email("b")],
        )
        report = await audit(conn)
    assert users == 2
    assert [c.name for c in report.checks if not c.ok] == []
    # The derived key authenticates as the canary user, and only sees its own wallet.
    key = canary_key(admin_key, "a")
    assert (await api.get(f"/v1/wallets/{accounts.wallet_a}", key=key)).status_code == 200
    assert (await api.get(f"/v1/wallets/{bystander['id']}", key=key)).status_code == 404


# --- a round of the real checks, and the history --------------------------------------------


async def test_history_shows_rounds_with_every_component(
    settings: Settings, container: bootstrap.Container, base_url: str, api: Api
) -> None:
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else ""
    probe = await bootstrap_probe(settings)
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
        deps = [
            Dependency(n, d.url or "", d.critical)
            for n, d in settings.dependency_settings().items()
        ]
        checks = [
            NamedCheck("api", ApiHealthCheck(http, base_url, 5.0), 5.0),
            NamedCheck("database", DatabaseCheck(probe, 5.0), 5.0),
            NamedCheck("payments", Canary(http, container.db, admin_key), 5.0),
            NamedCheck("dependencies", DependenciesCheck(http, deps, None, 1.0), 5.0),
        ]
        m = monitor(settings, container.db, checks, Recorder())
        try:
            rounds = [await m.run_round() for _ in range(2)]
        finally:
            await m.lease.release()
            await probe.close()
    for record in rounds:
        assert record.healthy, record.reason
        assert record.decision == "healthy"
        statuses = {name: c["status"] for name, c in record.components.items()}
        # The session runs with fraud and notifications down: degraded, not failed.
        assert statuses == {
            "api": "pass",
            "database": "pass",
            "payments": "pass",
            "dependencies": "warn",
        }
    r = await api.get("/v1/admin/health/history", limit=1)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["has_more"] is True
    [newest] = body["data"]
    assert newest["monitor_id"] == m.config.monitor_id
    assert newest["id"] == str(rounds[1].id)
    assert newest["components"]["dependencies"]["observed"]["fraud"]["status"] == "down"
    assert body["state"]["latest_round"]["round_id"] == newest["id"]
    assert body["state"]["leader"] is not None
    assert isinstance(body["failovers"], list)
    nxt = await api.get("/v1/admin/health/history", limit=1, starting_after=newest["id"])
    assert nxt.json()["data"][0]["id"] == str(rounds[0].id)
    assert (await api.get("/v1/admin/health/history", starting_after="x")).status_code == 400

    def sample(name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(name, labels)

    assert (sample("steadypay_monitor_rounds_total", result="healthy") or 0) >= 2
    assert sample("steadypay_monitor_consecutive_failures") == 0
    assert sample("steadypay_monitor_is_leader") in (0, 1)
    assert (sample("steadypay_monitor_failovers_total", outcome="succeeded") or 0) >= 1
    count = sample("steadypay_monitor_check_duration_seconds_count", component="payments")
    assert count is not None
    assert count >= 2


async def bootstrap_probe(settings: Settings) -> Database:
    from steadypay.db.pool import PoolOptions, create_database

    return await create_database(
        settings.require_database_url(), PoolOptions(min_size=0, max_size=1)
    )


async def test_a_critical_dependency_down_fails_the_component(
    settings: Settings, base_url: str
) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        live = Dependency("api", base_url, critical=True)
        down = Dependency("fraud", settings.fraud_url, critical=False)
        ok = await DependenciesCheck(http, [live], None, 1.0)()
        degraded = await DependenciesCheck(http, [live, down], None, 1.0)()
        failed = await DependenciesCheck(
            http, [Dependency("fraud", settings.fraud_url, critical=True)], None, 1.0
        )()
    assert (ok.status, degraded.status, failed.status) == (Status.PASS, Status.WARN, Status.FAIL)
    assert degraded.detail == "degraded: fraud down"


async def test_old_rounds_are_pruned(container: bootstrap.Container) -> None:
    async with container.db.connection() as conn:
        old_id = await conn.fetchval(
            """
            INSERT INTO monitor.rounds (monitor_id, role, started_at, finished_at, healthy,
                components, consecutive_failures, decision, reason)
            VALUES ('old', 'leader', now() - interval '8 days', now() - interval '8 days',
                    true, '{}', 0, 'healthy', 'all checks passed') RETURNING id
            """
        )
    assert await repo.prune_rounds(container.db, 7 * 86_400) >= 1
    async with container.db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM monitor.rounds WHERE id = $1", old_id) == 0
        assert await conn.fetchval("SELECT count(*) FROM monitor.rounds") > 0  # recent kept


async def test_stop_cancels_a_round_in_flight_and_releases_the_lease(
    settings: Settings, container: bootstrap.Container
) -> None:
    started = asyncio.Event()

    async def hangs() -> ComponentResult:
        started.set()
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    m = monitor(settings, container.db, [NamedCheck("api", hangs, 60.0)], Recorder())
    stop = asyncio.Event()
    run = asyncio.create_task(m.run(stop))
    await asyncio.wait_for(started.wait(), timeout=5)
    stop.set()
    await asyncio.wait_for(run, timeout=5)  # not the 30 s the check wanted
    other = LeaderLease(settings.require_database_url(), timeout_s=2.0)
    try:
        assert (await other.refresh()).leader  # the stopped monitor let go of the lease
    finally:
        await other.release()
