"""The fraud service over real HTTP on loopback, with its history in PostgreSQL and in a real
Redis (a private ``redis-server``): velocity, replays, back-and-forth, input errors, health,
deadlines, and what happens when Redis or PostgreSQL go away."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from steadypay.bootstrap.fraud import create_fraud_app
from steadypay.chaos.proxy import FaultProxy
from steadypay.cli.fraud import run_fraud_service
from steadypay.config import Environment, Settings
from steadypay.db.pool import PoolOptions, create_database
from steadypay.fraud.redis_velocity import KEY_PREFIX
from steadypay.fraud.repository import FRAUD_LOCK_CLASS, purge_once, sender_lock_key
from steadypay.fraud.rules import FraudRules, VelocityRule
from steadypay.money import get_currency, parse_amount
from tests.integration.conftest import ADMIN_KEY, free_port, serve
from tests.redis_server import RedisServer, redis_url_fixture

redis_url = redis_url_fixture()

# Small thresholds so that a test crosses them in a few checks.
RULES = FraudRules(
    version="rules-test",
    velocity=(
        VelocityRule(kind="count", window_s=60, over=3, points=30),
        VelocityRule(kind="sum", window_s=3_600, over=1_000, points=40),
    ),
)
OLD_ACCOUNT = "2020-01-01T00:00:00+00:00"
# Generous for a loaded machine: these tests must use Redis, not fall back (they check).
REDIS_TIMEOUT_MS = 2_000


class MovableClock:
    """Wall-clock time plus an offset that tests move forward (never back)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@dataclass
class Fraud:
    http: httpx.AsyncClient
    store: str
    clock: MovableClock

    async def check(
        self, body: dict[str, Any], *, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        sent = {"Idempotency-Key": body["transfer_id"]} | (headers or {})
        return await self.http.post("/check-fraud", json=body, headers=sent)

    async def verdict(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.check(body)
        assert response.status_code == 200, response.text
        assert response.headers["X-Velocity-Store"] == self.store
        result: dict[str, Any] = response.json()
        return result


def payload(
    sender: str | None = None,
    receiver: str | None = None,
    *,
    amount: str = "10.00",
    currency: str = "USD",
    created_at: str = OLD_ACCOUNT,
    **changes: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "transfer_id": str(uuid.uuid4()),
        "sender_user_id": sender or str(uuid.uuid4()),
        "receiver_user_id": receiver or str(uuid.uuid4()),
        "from_wallet_id": str(uuid.uuid4()),
        "to_wallet_id": str(uuid.uuid4()),
        "amount": amount,
        "amount_minor": parse_amount(amount, get_currency(currency)),
        "currency": currency,
        "sender_created_at": created_at,
    }
    body.update(changes)
    return body


def ids() -> tuple[str, str]:
    return str(uuid.uuid4()), str(uuid.uuid4())


@contextlib.asynccontextmanager
async def running(settings: Settings, clock: MovableClock, store: str) -> AsyncIterator[Fraud]:
    async with (
        serve(create_fraud_app(settings, RULES, clock=clock)) as url,
        httpx.AsyncClient(base_url=url, timeout=30.0, headers=internal_auth(settings)) as http,
    ):
        yield Fraud(http, store, clock)


@pytest.fixture(scope="module")
def clock() -> MovableClock:
    return MovableClock()


def internal_auth(settings: Settings) -> dict[str, str]:
    """What steadypay's own callers send the fraud service."""
    return {"Authorization": f"Bearer {settings.internal_key()}"}


def with_changes(settings: Settings, **changes: Any) -> Settings:
    """A copy of ``settings``, validated again (``model_copy`` would not)."""
    return Settings.model_validate(settings.model_dump() | changes)


@pytest.fixture(scope="module")
def pg_settings(database_url: str) -> Settings:
    return Settings(
        env=Environment.TEST, database_url=database_url, admin_key=ADMIN_KEY, db_pool_max_size=10
    )


@pytest.fixture(scope="module")
async def pg_fraud(pg_settings: Settings, clock: MovableClock) -> AsyncIterator[Fraud]:
    async with running(pg_settings, clock, "postgres") as fraud:
        yield fraud


@pytest.fixture(scope="module")
async def redis_fraud(
    pg_settings: Settings, redis_url: str, clock: MovableClock
) -> AsyncIterator[Fraud]:
    settings = with_changes(pg_settings, redis_url=redis_url, redis_timeout_ms=REDIS_TIMEOUT_MS)
    async with running(settings, clock, "redis") as fraud:
        yield fraud


@pytest.fixture(params=["postgres", "redis"])
def fraud(request: pytest.FixtureRequest) -> Fraud:
    """The same behaviour from either history store."""
    name = "pg_fraud" if request.param == "postgres" else "redis_fraud"
    chosen: Fraud = request.getfixturevalue(name)
    return chosen


# --- the contract --------------------------------------------------------------------------


async def test_a_verdict_has_exactly_the_contract_fields(fraud: Fraud) -> None:
    response = await fraud.check(payload(amount="5000.00"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"]
    assert "Idempotent-Replayed" not in response.headers
    assert response.json() == {
        "risk_score": 30 + 40 + 10,
        "reasons": ["amount_band:high", "velocity_sum:1h", "first_payment_to_receiver"],
        "model_version": "rules-test",
    }


async def test_velocity_accumulates_and_the_nth_check_in_a_minute_gets_the_reason(
    fraud: Fraud,
) -> None:
    sender, receiver = ids()
    seen = [
        (await fraud.verdict(payload(sender, receiver, amount="1.00")))["reasons"] for _ in range(5)
    ]
    # over=3: the 4th check in the minute is the first with more than 3
    assert ["velocity_count:1m" in r for r in seen] == [False, False, False, True, True]
    assert seen[0] == ["first_payment_to_receiver"]
    assert seen[3] == ["velocity_count:1m"]


async def test_velocity_sums_per_currency(fraud: Fraud) -> None:
    sender, receiver = ids()
    first = await fraud.verdict(payload(sender, receiver, amount="600.00"))
    in_euros = await fraud.verdict(payload(sender, receiver, amount="600.00", currency="EUR"))
    second = await fraud.verdict(payload(sender, receiver, amount="400.00"))
    third = await fraud.verdict(payload(sender, receiver, amount="0.01"))
    assert "velocity_sum:1h" not in first["reasons"]
    assert "velocity_sum:1h" not in in_euros["reasons"]  # 600 EUR: not added to the dollars
    assert "velocity_sum:1h" not in second["reasons"]  # exactly 1,000.00 USD
    assert "velocity_sum:1h" in third["reasons"]  # 1,000.01 USD


async def test_the_window_rolls(fraud: Fraud) -> None:
    sender, receiver = ids()
    for _ in range(3):
        await fraud.verdict(payload(sender, receiver))
    assert "velocity_count:1m" in (await fraud.verdict(payload(sender, receiver)))["reasons"]
    fraud.clock.advance(seconds=61)
    assert (await fraud.verdict(payload(sender, receiver)))["reasons"] == []


# --- idempotency ---------------------------------------------------------------------------


async def test_a_repeated_check_returns_the_same_verdict_and_counts_once(fraud: Fraud) -> None:
    sender, receiver = ids()
    first = payload(sender, receiver, amount="600.00", created_at=fraud.clock().isoformat())
    original = await fraud.check(first)
    assert original.status_code == 200
    assert original.json()["reasons"] == [
        "amount_band:medium",
        "new_account",
        "first_payment_to_receiver",
    ]
    fraud.clock.advance(seconds=10)  # a later retry: the verdict given then comes back
    for _ in range(3):
        repeat = await fraud.check(first)
        assert repeat.status_code == 200
        assert repeat.content == original.content
        assert repeat.headers["Idempotent-Replayed"] == "true"
    # Had the repeats counted, this would be the 5th check in the minute and 2,200.00 in the
    # hour; it is the 2nd and exactly 1,000.00 (not more than 1,000).
    second = await fraud.verdict(payload(sender, receiver, amount="400.00"))
    assert second["reasons"] == ["amount_band:medium"]
    third = await fraud.verdict(payload(sender, receiver, amount="0.01"))
    assert third["reasons"] == ["velocity_sum:1h"]
    fourth = await fraud.verdict(payload(sender, receiver, amount="0.01"))
    assert fourth["reasons"] == ["velocity_count:1m", "velocity_sum:1h"]


async def test_concurrent_repeats_record_one_check(fraud: Fraud) -> None:
    sender, receiver = ids()
    body = payload(sender, receiver)
    responses = await asyncio.gather(*(fraud.check(body) for _ in range(12)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1
    # one check recorded: three more make four, the first with the velocity reason
    seen = [(await fraud.verdict(payload(sender, receiver)))["reasons"] for _ in range(3)]
    assert ["velocity_count:1m" in r for r in seen] == [False, False, True]


async def test_a_repeat_works_without_the_header_too(fraud: Fraud) -> None:
    body = payload()
    first = await fraud.http.post("/check-fraud", json=body)
    again = await fraud.http.post("/check-fraud", json=body)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_the_same_transfer_id_with_other_details_is_refused(fraud: Fraud) -> None:
    body = payload()
    assert (await fraud.check(body)).status_code == 200
    changed = body | {"amount": "10.01", "amount_minor": 1001}
    response = await fraud.check(changed)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "idempotency_key_reuse"
    assert error["param"] == "transfer_id"
    assert error["transfer_id"] == body["transfer_id"]


# --- pairs ---------------------------------------------------------------------------------


async def test_back_and_forth_is_detected(fraud: Fraud) -> None:
    alice, bob = ids()
    a_to_b = await fraud.verdict(payload(alice, bob))
    b_to_a = await fraud.verdict(payload(bob, alice))
    a_to_b_again = await fraud.verdict(payload(alice, bob))
    assert a_to_b["reasons"] == ["first_payment_to_receiver"]
    assert b_to_a["reasons"] == ["first_payment_to_receiver", "back_and_forth"]
    assert b_to_a["risk_score"] == 10 + 25
    assert a_to_b_again["reasons"] == ["back_and_forth"]
    fraud.clock.advance(minutes=31)
    assert (await fraud.verdict(payload(alice, bob)))["reasons"] == []


async def test_a_receiver_without_a_user_is_known_by_its_wallet(fraud: Fraud) -> None:
    sender = str(uuid.uuid4())
    wallet = str(uuid.uuid4())
    first = await fraud.verdict(payload(sender, receiver_user_id=None, to_wallet_id=wallet))
    again = await fraud.verdict(payload(sender, receiver_user_id=None, to_wallet_id=wallet))
    assert first["reasons"] == ["first_payment_to_receiver"]
    assert again["reasons"] == []


async def test_a_new_account_is_flagged(fraud: Fraud) -> None:
    created = (fraud.clock() - timedelta(days=1)).isoformat()
    verdict = await fraud.verdict(payload(created_at=created))
    assert verdict["reasons"] == ["new_account", "first_payment_to_receiver"]
    assert verdict["risk_score"] == 25


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"sender_user_id": None}, "sender_user_id"),
        ({"transfer_id": "not-a-uuid"}, "transfer_id"),
        ({"note": "unexpected"}, "note"),
        ({"amount": 10.0}, "amount"),
        ({"amount": "10.001"}, "amount"),
        ({"amount": "-10.00"}, "amount"),
        ({"amount_minor": 1001}, "amount_minor"),
        ({"amount_minor": 0}, "amount_minor"),
        ({"amount_minor": "1000"}, "amount_minor"),
        ({"currency": "usd"}, "currency"),
        ({"sender_created_at": "2020-01-01T00:00:00"}, "sender_created_at"),
        ({"sender_created_at": "yesterday"}, "sender_created_at"),
    ],
)
async def test_invalid_input_is_400(pg_fraud: Fraud, change: dict[str, Any], param: str) -> None:
    body = payload() | change
    response = await pg_fraud.check(body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["param"] == param
    assert error["request_id"] == response.headers["x-request-id"]
    assert error["message"]


async def test_a_missing_field_and_a_body_that_is_not_json_are_400(pg_fraud: Fraud) -> None:
    body = payload()
    del body["from_wallet_id"]
    missing = await pg_fraud.http.post("/check-fraud", json=body)
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "from_wallet_id"
    broken = await pg_fraud.http.post(
        "/check-fraud", content=b"{", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json()["error"]["message"] == "the request body is not valid JSON"


async def test_an_idempotency_key_other_than_the_transfer_id_is_400(pg_fraud: Fraud) -> None:
    body = payload()
    response = await pg_fraud.check(body, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "Idempotency-Key"
    # nothing was recorded: the proper request is a first check, not a replay
    proper = await pg_fraud.check(body)
    assert proper.status_code == 200
    assert "Idempotent-Replayed" not in proper.headers


async def test_unknown_routes_get_our_error_body(pg_fraud: Fraud) -> None:
    response = await pg_fraud.http.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- health --------------------------------------------------------------------------------


async def test_health(fraud: Fraud) -> None:
    live = await fraud.http.get("/health/live")
    ready = await fraud.http.get("/health/ready")
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.headers["content-type"] == "application/health+json"
    body = ready.json()
    assert (body["status"], body["serviceId"]) == ("pass", "steadypay-fraud")
    expected = {"postgresql:responseTime", "postgresql:connections", "velocityStore:active"}
    if fraud.store == "redis":
        expected.add("redis:responseTime")
    assert set(body["checks"]) == expected
    assert body["checks"]["velocityStore:active"][0]["observedValue"] == fraud.store
    assert {c[0]["status"] for c in body["checks"].values()} == {"pass"}


# --- deadlines -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-5"])
async def test_a_spent_deadline_gets_504_at_once(fraud: Fraud, value: str) -> None:
    body = payload()
    started = time.monotonic()
    response = await fraud.check(body, headers={"X-Deadline-Ms": value})
    assert time.monotonic() - started < 2.0
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["code"] == "deadline_exceeded"
    assert error["param"] == "X-Deadline-Ms"
    assert error["request_id"] == response.headers["x-request-id"]
    # it was not recorded: the retry with a budget is a first check
    retried = await fraud.check(body, headers={"X-Deadline-Ms": "5000"})
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried.headers


async def test_a_malformed_deadline_is_400(pg_fraud: Fraud) -> None:
    response = await pg_fraud.check(payload(), headers={"X-Deadline-Ms": "soon"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "X-Deadline-Ms"


async def test_the_deadline_bounds_a_check_stuck_behind_a_lock(
    pg_fraud: Fraud, database_url: str
) -> None:
    """A check waiting for its sender's lock gives up when the caller's budget is spent (long
    before the database's lock timeout), and leaves nothing recorded."""
    sender, receiver = ids()
    body = payload(sender, receiver)
    holder = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            await holder.execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                FRAUD_LOCK_CLASS,
                sender_lock_key(uuid.UUID(sender)),
            )
            started = time.monotonic()
            response = await pg_fraud.check(body, headers={"X-Deadline-Ms": "300"})
            elapsed = time.monotonic() - started
    finally:
        await holder.close()
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "deadline_exceeded"
    assert 0.25 <= elapsed < 3.0
    retried = await pg_fraud.check(body)
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried.headers


# --- the stores themselves -----------------------------------------------------------------


async def test_postgres_keeps_one_row_per_transfer(pg_fraud: Fraud, database_url: str) -> None:
    body = payload()
    for _ in range(3):
        await pg_fraud.check(body)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT risk_score, reasons, model_version FROM fraud.checks WHERE transfer_id = $1",
            uuid.UUID(body["transfer_id"]),
        )
    finally:
        await conn.close()
    assert [dict(r) for r in rows] == [
        {"risk_score": 10, "reasons": ["first_payment_to_receiver"], "model_version": "rules-test"}
    ]


async def test_redis_keys_are_laid_out_and_expire(redis_fraud: Fraud, redis_url: str) -> None:
    sender, receiver = ids()
    body = payload(sender, receiver, amount="12.34")
    await redis_fraud.verdict(body)
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        check_key = f"{KEY_PREFIX}check:{body['transfer_id']}"
        stored = await redis.hgetall(check_key)
        members = await redis.zrange(f"{KEY_PREFIX}sent:{sender}", 0, -1)
        ttls = {
            "check": await redis.pttl(check_key),
            "sent": await redis.pttl(f"{KEY_PREFIX}sent:{sender}"),
            "pair": await redis.pttl(f"{KEY_PREFIX}pair:{sender}:{receiver}"),
        }
    finally:
        await redis.aclose()
    assert set(stored) == {"fp", "at", "facts", "verdict"}
    assert members == [f"{body['transfer_id']}|USD|1234"]
    assert 0 < ttls["check"] <= 24 * 3600 * 1000
    assert 0 < ttls["sent"] <= 3600 * 1000
    assert 3600 * 1000 < ttls["pair"] <= 90 * 86400 * 1000


async def test_redis_down_falls_back_to_postgres_and_comes_back(
    pg_settings: Settings, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    settings = with_changes(
        pg_settings,
        redis_url=server.url,
        redis_timeout_ms=REDIS_TIMEOUT_MS,
        breaker_store_cooldown_s=0.2,
    )
    try:
        async with running(settings, MovableClock(), "redis") as fraud:
            sender, receiver = ids()
            assert (await fraud.check(payload(sender, receiver))).headers[
                "X-Velocity-Store"
            ] == "redis"
            server.stop()
            down = [await fraud.check(payload(sender, receiver)) for _ in range(4)]
            assert {r.status_code for r in down} == {200}
            assert {r.headers["X-Velocity-Store"] for r in down} == {"postgres"}
            # PostgreSQL counts what it saw: its 4th check in the minute has the reason
            assert ["velocity_count:1m" in r.json()["reasons"] for r in down] == [
                False,
                False,
                False,
                True,
            ]
            ready = await fraud.http.get("/health/ready")
            assert ready.status_code == 200  # Redis down is a warning, not unready
            checks = ready.json()["checks"]
            assert ready.json()["status"] == "warn"
            assert checks["redis:responseTime"][0]["status"] == "warn"
            velocity = checks["velocityStore:active"][0]
            assert (velocity["status"], velocity["observedValue"]) == ("warn", "postgres")
            server.start()
            await asyncio.sleep(0.3)  # past the cooldown
            back = await fraud.check(payload(sender, receiver))
            assert back.headers["X-Velocity-Store"] == "redis"
    finally:
        server.stop()


async def test_redis_unreachable_from_the_start(pg_settings: Settings) -> None:
    settings = with_changes(pg_settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with running(settings, MovableClock(), "postgres") as fraud:
        verdict = await fraud.verdict(payload())
        assert verdict["reasons"] == ["first_payment_to_receiver"]
        ready = await fraud.http.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["redis:responseTime"][0]["status"] == "warn"


async def test_checks_past_their_retention_are_purged(pg_settings: Settings) -> None:
    """A check recorded 100 days ago is past every use (90-day receiver memory, 1 h windows,
    24 h replay): the purge removes it, and the transfer_id is then a first check again."""
    past = MovableClock()
    past.advance(days=-100)
    body = payload()
    async with running(pg_settings, past, "postgres") as fraud:
        assert (await fraud.check(body)).status_code == 200
    db = await create_database(pg_settings.require_database_url(), PoolOptions(min_size=1))
    try:
        removed = await purge_once(db, datetime.now(UTC) - timedelta(days=90))
    finally:
        await db.close()
    assert removed is not None
    assert removed >= 1
    async with running(pg_settings, MovableClock(), "postgres") as fraud:
        again = await fraud.check(body)
        assert again.status_code == 200
        assert "Idempotent-Replayed" not in again.headers


async def test_the_openapi_document_describes_the_contract(pg_fraud: Fraud) -> None:
    document = (await pg_fraud.http.get("/openapi.json")).json()
    operation = document["paths"]["/check-fraud"]["post"]
    assert set(operation["responses"]) == {"200", "400", "401", "422", "503", "504"}
    assert operation["security"] == [{"InternalKey": []}]
    required = set(document["components"]["schemas"]["CheckFraudIn"]["required"])
    assert required == {
        "transfer_id",
        "sender_user_id",
        "from_wallet_id",
        "to_wallet_id",
        "currency",
        "amount",
        "amount_minor",
        "sender_created_at",
    }


# --- PostgreSQL going away -----------------------------------------------------------------


async def test_database_down_is_503_and_unready_then_recovers(pg_settings: Settings) -> None:
    url = make_url(pg_settings.require_database_url())
    proxy = FaultProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = with_changes(pg_settings, database_url=proxied, db_connect_timeout_s=1.0)
    try:
        async with running(settings, MovableClock(), "postgres") as fraud:
            assert (await fraud.http.get("/health/ready")).status_code == 200
            await proxy.down()
            ready = await fraud.http.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["status"] == "fail"
            assert ready.json()["checks"]["postgresql:responseTime"][0]["status"] == "fail"
            check = await fraud.check(payload())
            assert check.status_code == 503
            assert check.json()["error"]["code"] == "database_unavailable"
            assert check.headers["Retry-After"]
            await proxy.up()
            assert (await fraud.http.get("/health/ready")).status_code == 200
            assert (await fraud.check(payload())).status_code == 200
    finally:
        await proxy.down()


# --- the process -----------------------------------------------------------------------------


def test_run_fraud_service_serves_until_terminated(database_url: str, repo_root: Path) -> None:
    port = free_port()
    env = os.environ | {
        "STEADYPAY_DATABASE_URL": database_url,
        "STEADYPAY_ENV": "test",
        "STEADYPAY_LOG_LEVEL": "warning",
        "STEADYPAY_ADMIN_KEY": ADMIN_KEY,
    }
    env.pop("STEADYPAY_INTERNAL_KEYS", None)
    env.pop("STEADYPAY_REDIS_URL", None)
    code = (
        "from steadypay.cli.fraud import run_fraud_service\n"
        "from steadypay.config import Settings\n"
        f"run_fraud_service(Settings(), '127.0.0.1', {port})\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=repo_root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as http:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, process.communicate()[1].decode()[-2000:]
                try:
                    if http.get("/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the fraud service did not become ready"
                time.sleep(0.1)
            body = payload()
            assert http.post("/check-fraud", json=body).status_code == 401
            response = http.post(
                "/check-fraud",
                json=body,
                headers=internal_auth(Settings(env=Environment.TEST, admin_key=ADMIN_KEY)),
            )
            assert response.status_code == 200
            assert response.json()["model_version"] == FraudRules().version
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
    assert process.returncode in (0, -signal.SIGTERM), err.decode()[-2000:]


def test_run_fraud_service_needs_a_database_url() -> None:
    with pytest.raises(SystemExit, match="STEADYPAY_DATABASE_URL"):
        run_fraud_service(Settings(env=Environment.TEST, database_url=None), "127.0.0.1", 0)


async def test_an_unmigrated_database_is_refused_at_startup(pg_server_url: str) -> None:
    name = f"steadypay_fraud_bare_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        bare = make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
        app = create_fraud_app(
            Settings(env=Environment.TEST, database_url=bare, admin_key=ADMIN_KEY)
        )
        with pytest.raises(RuntimeError, match="steadypay migrate"):
            async with app.router.lifespan_context(app):
                pass
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
