"""Issue 14, finding 2: one caller's bad input is that caller's 4xx, never a dependency failure.

The payment API and the notification service run for real on loopback, the API as two
"workers" (two containers) whose ``notifications`` breaker is shared through a real Redis, as
in production: what one worker counts opens the circuit for every worker.

- The original reproduction: six ``POST /v1/webhook_endpoints`` with a NUL in the URL used to
  make the notification service answer 500, the API 503, and open the shared breaker for 60 s.
- Past the API's own validation (the client called directly, as a future route or a bug
  could), 20 URLs the service refuses are 20 validation errors for that caller, and the
  next user's registration, through the other worker, succeeds with the circuit closed.
- A refusal of *our* credentials (401) is the opposite: the same for every caller, so it is a
  dependency failure and does count.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from redis.asyncio import Redis

from steadypay import bootstrap
from steadypay.bootstrap.api import create_app
from steadypay.bootstrap.notifications import create_notification_app
from steadypay.config import DependencySettings, Environment, Settings
from steadypay.errors import CircuitOpenError, DependencyFailure, ValidationError
from steadypay.notifications.client import DEPENDENCY, NotificationsClient
from steadypay.notifications.options import NotificationOptions
from steadypay.resilience.client import ReliableServiceClient
from steadypay.resilience.pipeline import Pipeline, PipelineConfig
from steadypay.resilience.redis_store import KEY_PREFIX
from steadypay.resilience.store import BreakerConfig, State
from tests.api_client import Api
from tests.conftest import fresh_database
from tests.integration.conftest import ADMIN_KEY, serve
from tests.redis_server import redis_url_fixture

redis_url = redis_url_fixture(scope="module")

OPTIONS = NotificationOptions(poll_interval_s=0.05, lease_s=5, delivery_timeout_s=1)
NUL_URL = "http://example.com/hook\u0000"
# Refused by the notification service itself; the first three already were before the fix.
REFUSED_BY_THE_SERVICE = [
    "ftp://example.com/hook",
    "example.com/hook",
    "http://user:pw@example.com/hook",
    NUL_URL,
    "http://example.com/ho ok",
    "http://exa\tmple.com/hook",
    "http://example.com:99999/hook",
]


@pytest.fixture(scope="module")
def database(pg_server_url: str) -> Iterator[str]:
    with fresh_database(pg_server_url, "steadypay_callers") as url:
        yield url


@pytest.fixture(scope="module")
async def service_url(database: str) -> AsyncIterator[str]:
    settings = Settings(
        env=Environment.TEST, database_url=database, admin_key=ADMIN_KEY, db_pool_max_size=5
    )
    async with serve(create_notification_app(settings, OPTIONS)) as url:
        yield url


@pytest.fixture(scope="module")
def api_settings(database: str, redis_url: str, service_url: str) -> Settings:
    return Settings(
        env=Environment.TEST,
        database_url=database,
        admin_key=ADMIN_KEY,
        db_pool_max_size=5,
        redis_url=redis_url,
        redis_timeout_ms=1000,  # a loaded test machine must not fall back to local state
        dependencies={
            DEPENDENCY: DependencySettings(
                url=service_url, total_timeout_s=3.0, attempt_timeout_s=2.0
            )
        },
    )


@pytest.fixture(scope="module")
async def workers(
    api_settings: Settings,
) -> AsyncIterator[list[tuple[Api, bootstrap.Container]]]:
    """Two API workers sharing the Redis breaker store."""
    built: list[bootstrap.Container] = []
    try:
        for _ in range(2):
            built.append(await bootstrap.build(api_settings))
        async with (
            serve(create_app(api_settings, built[0])) as one,
            serve(create_app(api_settings, built[1])) as two,
            httpx.AsyncClient(base_url=one, timeout=10) as http_one,
            httpx.AsyncClient(base_url=two, timeout=10) as http_two,
        ):
            yield [(Api(http_one, ADMIN_KEY), built[0]), (Api(http_two, ADMIN_KEY), built[1])]
    finally:
        for container in built:
            await container.close()


@pytest.fixture(autouse=True)
async def _closed_breaker(redis_url: str) -> AsyncIterator[None]:
    """Each test starts (and is judged) on a closed shared circuit."""
    redis = Redis.from_url(redis_url)
    try:
        await redis.delete(KEY_PREFIX + DEPENDENCY)
        yield
    finally:
        await redis.aclose()


async def shared_state(redis_url: str) -> State:
    """The breaker's state as every worker reads it (a missing key is CLOSED)."""
    redis = Redis.from_url(redis_url)
    try:
        raw = await redis.hget(KEY_PREFIX + DEPENDENCY, "state")
    finally:
        await redis.aclose()
    return State(int(raw)) if raw is not None else State.CLOSED


async def circuit_check(api: Api) -> dict[str, object]:
    r = await api.http.get("/health/ready")
    check: dict[str, object] = r.json()["checks"][f"{DEPENDENCY}:circuit"][0]
    return check


async def test_six_nul_urls_are_400_and_leave_the_shared_breaker_closed(
    workers: list[tuple[Api, bootstrap.Container]], redis_url: str
) -> None:
    """The exact reproduction of finding 2."""
    (first, container), (second, _) = workers
    alice, bob = await first.user(), await first.user()
    for _ in range(6):
        r = await first.post("/v1/webhook_endpoints", {"url": NUL_URL}, key=alice["api_key"])
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "validation_error"
        assert r.json()["error"]["param"] == "url"

    assert await shared_state(redis_url) is State.CLOSED
    assert (await container.dependencies[DEPENDENCY].pipeline.breaker.snapshot()).state is (
        State.CLOSED
    )
    check = await circuit_check(first)
    assert (check["status"], check["observedValue"]) == ("pass", "closed")
    r = await second.post(
        "/v1/webhook_endpoints", {"url": "http://example.com/bob"}, key=bob["api_key"]
    )
    assert r.status_code == 201, r.text


async def test_one_callers_refused_requests_cannot_open_the_breaker_serving_others(
    workers: list[tuple[Api, bootstrap.Container]], api_settings: Settings, redis_url: str
) -> None:
    """Past the API's validation: 20 registrations the notification service itself refuses
    are 20 validation errors for user A, counted as nothing; user B, on the other worker,
    then registers normally."""
    (first, container), (second, other) = workers
    alice, bob = await first.user(), await first.user()
    client = NotificationsClient(container.dependencies[DEPENDENCY], api_settings.internal_key())
    for n in range(20):
        url = REFUSED_BY_THE_SERVICE[n % len(REFUSED_BY_THE_SERVICE)]
        with pytest.raises(ValidationError) as refused:
            await client.create_endpoint(
                uuid.UUID(alice["id"]), url, idempotency_key=f"alice-{uuid.uuid4()}"
            )
        assert refused.value.param == "url", url

    assert await shared_state(redis_url) is State.CLOSED
    for worker in (container, other):
        snapshot = await worker.dependencies[DEPENDENCY].pipeline.breaker.snapshot()
        assert snapshot.state is State.CLOSED
    r = await second.post(
        "/v1/webhook_endpoints", {"url": "http://example.com/bob"}, key=bob["api_key"]
    )
    assert r.status_code == 201, r.text
    assert r.json()["user_id"] == bob["id"]
    for api in (first, second):
        check = await circuit_check(api)
        assert (check["status"], check["observedValue"]) == ("pass", "closed")


async def test_a_refusal_of_our_credentials_is_a_dependency_failure(service_url: str) -> None:
    """401 from a dependency: our key is wrong, for every caller alike. It is a 503 for the
    caller and counts against the breaker (not retried: the next attempt would be refused the
    same), so the circuit opens and /health/ready says so."""
    pipeline = Pipeline(
        DEPENDENCY,
        PipelineConfig(total_timeout_s=3.0, attempt_timeout_s=2.0, max_attempts=3,
                       breaker=BreakerConfig(failure_threshold=3)),
    )  # fmt: skip
    misconfigured = ReliableServiceClient(service_url, pipeline)
    client = NotificationsClient(misconfigured, "not-the-key")
    try:
        for _ in range(3):
            with pytest.raises(DependencyFailure) as failed:
                await client.create_endpoint(
                    uuid.uuid4(), "http://example.com/h", idempotency_key=str(uuid.uuid4())
                )
            assert failed.value.status_code == 401
        with pytest.raises(CircuitOpenError):
            await client.create_endpoint(
                uuid.uuid4(), "http://example.com/h", idempotency_key=str(uuid.uuid4())
            )
    finally:
        await misconfigured.aclose()
    assert (await pipeline.breaker.snapshot()).state is State.OPEN
