"""The outbox relay on real PostgreSQL, delivering over real HTTP to a receiver on loopback.

These tests run on a database of their own (the ledger's tests write outbox rows too, and a
relay claims every due row it finds).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from steadypay import bootstrap
from steadypay.api.routes import outbox as outbox_routes
from steadypay.bootstrap.api import create_app
from steadypay.config import Environment, Settings
from steadypay.db.pool import Database, PoolOptions, create_database
from steadypay.errors import DatabaseUnavailable
from steadypay.outbox import OutboxRelay, OutboxStatus, RelayOptions, outbox_backlog
from steadypay.outbox import repository as outbox_sql
from steadypay.resilience.client import ReliableServiceClient
from steadypay.resilience.pipeline import Pipeline, PipelineConfig
from steadypay.resilience.store import BreakerConfig
from tests.conftest import fresh_database
from tests.integration.conftest import ADMIN_KEY, free_port, serve

NO_BREAKER = BreakerConfig(
    failure_threshold=0, failure_rate_threshold=0, slow_call_rate_threshold=0
)


# --- a notification-like receiver --------------------------------------------------------------


@dataclass
class Receiver:
    """POST /events and POST /events/batch (unless ``batch`` is False): records every event
    received (with the event id as its key, whichever way it came), how many were in flight per
    event at once, and answers what ``status_for(event_id, nth_request_for_that_event)`` says
    (202 by default). In a batch, a 5xx for any event fails the whole request with that status
    and a 4xx rejects that event alone."""

    delay_s: float = 0.0
    status_for: Callable[[str, int], int] = lambda _event, _n: 202
    batch: bool = True
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    posts: Counter[str] = field(default_factory=Counter)
    """Requests per path."""
    in_flight: Counter[str] = field(default_factory=Counter)
    max_in_flight: Counter[str] = field(default_factory=Counter)

    def count(self, event_id: uuid.UUID) -> int:
        return sum(1 for key, _ in self.requests if key == str(event_id))

    async def _received(self, keys: list[str]) -> None:
        for key in keys:
            self.in_flight[key] += 1
            self.max_in_flight[key] = max(self.max_in_flight[key], self.in_flight[key])
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            for key in keys:
                self.in_flight[key] -= 1

    async def events(self, request: Request) -> JSONResponse:
        self.posts[request.url.path] += 1
        key = request.headers.get("idempotency-key", "")
        self.requests.append((key, await request.json()))
        await self._received([key])
        status = self.status_for(key, self.count(uuid.UUID(key)) if key else 0)
        return JSONResponse({"received": key}, status_code=status)

    async def events_batch(self, request: Request) -> JSONResponse:
        self.posts[request.url.path] += 1
        events = (await request.json())["events"]
        keys = [event["id"] for event in events]
        self.requests += [(event["id"], event) for event in events]
        await self._received(keys)
        statuses = [self.status_for(key, self.count(uuid.UUID(key))) for key in keys]
        if failed := [s for s in statuses if s >= 500]:
            return JSONResponse({"error": "scripted failure"}, status_code=failed[0])
        results = [
            {"id": key, "status": "accepted"}
            if status < 300
            else {"id": key, "status": "rejected", "error": {"message": f"scripted {status}"}}
            for key, status in zip(keys, statuses, strict=True)
        ]
        return JSONResponse({"results": results})

    def app(self) -> Starlette:
        routes = [Route("/events", self.events, methods=["POST"])]
        if self.batch:
            routes.append(Route("/events/batch", self.events_batch, methods=["POST"]))
        return Starlette(routes=routes)


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[str]:
    async with serve(receiver.app()) as url:
        yield url


def client_for(
    url: str, *, total_timeout_s: float = 0.8, breaker: BreakerConfig = NO_BREAKER
) -> ReliableServiceClient:
    config = PipelineConfig(
        total_timeout_s=total_timeout_s,
        attempt_timeout_s=min(0.5, total_timeout_s),
        max_attempts=1,
        breaker=breaker,
    )
    return ReliableServiceClient(url, Pipeline("notifications", config))


# --- database ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def outbox_database_url(pg_server_url: str) -> Iterator[str]:
    with fresh_database(pg_server_url, "steadypay_outbox") as url:
        yield url


@pytest.fixture(scope="module")
async def db(outbox_database_url: str) -> AsyncIterator[Database]:
    database = await create_database(outbox_database_url, PoolOptions(min_size=1, max_size=20))
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture(autouse=True)
async def empty_outbox(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute("DELETE FROM outbox_events")


async def insert_events(db: Database, n: int = 1, *, age_s: float = 0.0) -> list[uuid.UUID]:
    """Rows as the ledger writes them, created ``age_s`` ago, due now."""
    ids = [uuid.uuid4() for _ in range(n)]
    rows = []
    for event_id in ids:
        transfer_id = uuid.uuid4()
        payload = {
            "id": str(event_id),
            "type": "transfer.completed",
            "created_at": "2026-11-25T10:00:00+00:00",
            "user_ids": [str(uuid.uuid4())],
            "data": {"transfer": {"id": str(transfer_id), "amount": "12.34"}},
        }
        rows.append((event_id, transfer_id, json.dumps(payload)))
    async with db.connection() as conn:
        await conn.executemany(
            """
            INSERT INTO outbox_events (id, type, transfer_id, payload, created_at)
            VALUES ($1, 'transfer.completed', $2, $3::jsonb, now() - make_interval(secs => $4))
            """,
            [(*row, float(age_s)) for row in rows],
        )
    return ids


async def row(db: Database, event_id: uuid.UUID) -> asyncpg.Record:
    async with db.connection() as conn:
        found = await conn.fetchrow(
            """
            SELECT status, attempts, last_error, delivered_at,
                   extract(epoch FROM next_attempt_at - now())::float8 AS due_in_s
            FROM outbox_events WHERE id = $1
            """,
            event_id,
        )
    assert found is not None
    return found


async def make_due(db: Database, event_id: uuid.UUID) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE outbox_events SET next_attempt_at = now() WHERE id = $1", event_id
        )


# --- tests -------------------------------------------------------------------------------------


async def test_delivers_the_payload_with_the_event_id_as_idempotency_key(db: Database) -> None:
    receiver = Receiver()
    [event_id] = await insert_events(db)
    async with receiving(receiver) as url:
        client = client_for(url)
        try:
            stats = await OutboxRelay(db, client, RelayOptions(lease_s=5)).run_once()
        finally:
            await client.aclose()
    assert (stats.claimed, stats.delivered) == (1, 1)
    [(key, body)] = receiver.requests
    assert key == str(event_id)
    assert body["id"] == str(event_id)
    assert body["data"]["transfer"]["amount"] == "12.34"
    delivered = await row(db, event_id)
    assert delivered["status"] == "delivered"
    assert delivered["delivered_at"] is not None
    assert delivered["attempts"] == 1


async def test_two_relays_never_deliver_the_same_event_at_the_same_time(db: Database) -> None:
    receiver = Receiver(delay_s=0.03)
    ids = await insert_events(db, 60)
    async with receiving(receiver) as url:
        client_a, client_b = client_for(url), client_for(url)
        relays = [
            OutboxRelay(db, client_a, RelayOptions(batch_size=7, concurrency=4, lease_s=5)),
            OutboxRelay(db, client_b, RelayOptions(batch_size=7, concurrency=4, lease_s=5)),
        ]
        claimed = [0, 0]

        async def drain(i: int) -> None:
            while (stats := await relays[i].run_once()).claimed:
                claimed[i] += stats.claimed

        try:
            await asyncio.gather(drain(0), drain(1))
        finally:
            await client_a.aclose()
            await client_b.aclose()
    counts = Counter(key for key, _ in receiver.requests)
    assert counts == Counter({str(i): 1 for i in ids})  # each exactly once, none missing
    assert max(receiver.max_in_flight.values()) == 1
    assert claimed[0] > 0
    assert claimed[1] > 0  # both relays really worked side by side
    assert sum(claimed) == 60
    async with db.connection() as conn:
        statuses = await conn.fetch("SELECT status, count(*) FROM outbox_events GROUP BY 1")
    assert {r["status"]: r["count"] for r in statuses} == {"delivered": 60}


async def test_a_failure_schedules_full_jitter_backoff_and_records_the_error(
    db: Database,
) -> None:
    receiver = Receiver(status_for=lambda _e, n: 500 if n <= 2 else 409 if n == 3 else 202)
    [event_id] = await insert_events(db)
    async with receiving(receiver) as url:
        client = client_for(url)
        relay = OutboxRelay(
            db,
            client,
            RelayOptions(lease_s=5, backoff_base_s=10, backoff_cap_s=30),
            rng=lambda: 0.5,
        )
        try:
            # attempt 1 -> 0.5 * 10 s; attempt 2 -> 0.5 * 20 s; attempt 3 -> 0.5 * min(30, 40)
            for attempt, expected_delay, error in [
                (1, 5.0, "dependency_error"),
                (2, 10.0, "dependency_error"),
                (3, 15.0, "HTTP 409"),
            ]:
                stats = await relay.run_once()
                assert (stats.claimed, stats.retried, stats.delivered) == (1, 1, 0)
                failed = await row(db, event_id)
                assert failed["status"] == "pending"
                assert failed["attempts"] == attempt
                assert expected_delay - 1 < failed["due_in_s"] <= expected_delay
                assert error in failed["last_error"]
                assert (await relay.run_once()).claimed == 0  # not due before its time
                await make_due(db, event_id)
            stats = await relay.run_once()
        finally:
            await client.aclose()
    assert stats.delivered == 1
    assert (await row(db, event_id))["status"] == "delivered"
    assert receiver.count(event_id) == 4


async def test_an_unreachable_service_is_a_failure_like_any_other(db: Database) -> None:
    [event_id] = await insert_events(db)
    client = client_for(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    try:
        stats = await OutboxRelay(db, client, RelayOptions(lease_s=5, backoff_base_s=2)).run_once()
    finally:
        await client.aclose()
    assert stats.retried == 1
    failed = await row(db, event_id)
    assert failed["status"] == "pending"
    assert "dependency_error" in failed["last_error"]
    assert failed["due_in_s"] <= 2


async def test_an_open_circuit_defers_the_next_attempt_until_its_trial(db: Database) -> None:
    receiver = Receiver(status_for=lambda _e, _n: 503)
    first, second = await insert_events(db, 2)
    breaker = BreakerConfig(failure_threshold=1, reset_timeout_s=30)
    async with receiving(receiver) as url:
        client = client_for(url, breaker=breaker)
        relay = OutboxRelay(
            db,
            client,
            RelayOptions(lease_s=5, concurrency=1, backoff_base_s=0.01, delivery_batch_size=1),
        )
        try:
            stats = await relay.run_once()
        finally:
            await client.aclose()
    assert stats.retried == 2
    assert receiver.count(first) == 1
    assert receiver.count(second) == 0  # rejected by the open circuit, not sent
    rejected = await row(db, second)
    assert "circuit_open" in rejected["last_error"]
    assert rejected["due_in_s"] > 25  # not 0.01 s: no point trying before the trial call


async def test_an_event_older_than_max_age_that_fails_is_dead(db: Database) -> None:
    receiver = Receiver(status_for=lambda _e, _n: 500)
    old, young = await insert_events(db, 2, age_s=0)
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE outbox_events SET created_at = now() - interval '73 hours' WHERE id = $1", old
        )
    async with receiving(receiver) as url:
        client = client_for(url)
        try:
            stats = await OutboxRelay(
                db, client, RelayOptions(lease_s=5, backoff_base_s=0.01)
            ).run_once()
        finally:
            await client.aclose()
    assert (stats.dead, stats.retried) == (1, 1)
    assert (await row(db, old))["status"] == "dead"
    assert (await row(db, young))["status"] == "pending"
    backlog = await outbox_backlog(db)
    assert backlog["pending"] == 1
    assert backlog["dead"] == 1
    assert backlog["oldest_pending_age_s"] is not None
    assert 0 <= backlog["oldest_pending_age_s"] < 60


async def test_a_crashed_relays_events_are_claimed_again_after_the_lease(db: Database) -> None:
    receiver = Receiver()
    [event_id] = await insert_events(db)
    async with receiving(receiver) as url:
        client = client_for(url, total_timeout_s=0.5)
        crashed = OutboxRelay(db, client, RelayOptions(lease_s=1.0))
        survivor = OutboxRelay(db, client, RelayOptions(lease_s=1.0))
        try:
            await crashed.claim()  # ...and the process dies before delivering
            assert (await survivor.run_once()).claimed == 0  # leased: not due for anyone
            await asyncio.sleep(1.1)
            stats = await survivor.run_once()
        finally:
            await client.aclose()
    assert stats.delivered == 1
    assert receiver.count(event_id) == 1
    delivered = await row(db, event_id)
    assert delivered["status"] == "delivered"
    assert delivered["attempts"] == 2


async def test_a_slow_relays_late_outcome_cannot_overwrite_a_newer_claim(db: Database) -> None:
    [event_id] = await insert_events(db)
    client = client_for("http://127.0.0.1:1")
    slow, other = (
        OutboxRelay(db, client, RelayOptions(lease_s=5)),
        OutboxRelay(db, client, RelayOptions(lease_s=5)),
    )
    try:
        [stale] = await slow.claim()
        await make_due(db, event_id)  # the slow relay's lease ran out...
        [fresh] = await other.claim()  # ...and another relay holds the event now
    finally:
        await client.aclose()
    assert (stale.attempts, fresh.attempts) == (1, 2)
    async with db.connection() as conn:
        late = await outbox_sql.record_failure(
            conn, event_id, stale.attempts, delay_s=0, error="late", max_age_s=3600
        )
        assert late is None
        held = await row(db, event_id)
        assert held["last_error"] is None
        assert held["due_in_s"] > 4  # the new claim's lease is intact
        current = await outbox_sql.record_failure(
            conn, event_id, fresh.attempts, delay_s=60, error="HTTP 500", max_age_s=3600
        )
    assert current is OutboxStatus.PENDING
    assert (await row(db, event_id))["last_error"] == "HTTP 500"


@pytest.mark.parametrize("n", [1, 3], ids=["one-event", "a-batch"])
async def test_a_delivery_that_could_outlast_the_lease_is_released_not_started(
    db: Database, n: int
) -> None:
    receiver = Receiver()
    ids = await insert_events(db, n)
    now = [0.0]
    async with receiving(receiver) as url:
        client = client_for(url, total_timeout_s=0.5)
        relay = OutboxRelay(db, client, RelayOptions(lease_s=1.0), monotonic=lambda: now[0])
        real_claim = relay.claim

        async def slow_claim() -> list[Any]:
            claimed = await real_claim()
            now[0] += 0.6  # the claim took long: 0.6 + 0.5 s of delivery > the 1 s lease
            return claimed

        relay.claim = slow_claim  # type: ignore[method-assign]
        try:
            stats = await relay.run_once()
        finally:
            await client.aclose()
    assert stats.deferred == n
    assert receiver.requests == []
    for event_id in ids:
        released = await row(db, event_id)
        assert (released["status"], released["attempts"]) == ("pending", 0)
        assert released["due_in_s"] <= 0


async def test_a_batch_is_one_post_and_each_event_gets_its_own_outcome(db: Database) -> None:
    ids = await insert_events(db, 10)
    refused = str(ids[3])
    receiver = Receiver(status_for=lambda event, n: 422 if event == refused and n == 1 else 202)
    async with receiving(receiver) as url:
        client = client_for(url)
        relay = OutboxRelay(
            db,
            client,
            RelayOptions(lease_s=5, delivery_batch_size=4, backoff_base_s=10),
            rng=lambda: 0.5,  # full jitter's draw, fixed: 5 s (a draw under 0.1 gave < 1 s)
        )
        try:
            stats = await relay.run_once()
            assert receiver.posts == Counter({"/events/batch": 3})  # 4 + 4 + 2 events
            assert (stats.claimed, stats.delivered, stats.retried) == (10, 9, 1)
            rejected = await row(db, ids[3])
            assert rejected["status"] == "pending"
            assert rejected["last_error"] == "scripted 422"
            assert rejected["due_in_s"] > 1  # backoff as for a single delivery
            for event_id in ids[:3] + ids[4:]:
                assert (await row(db, event_id))["status"] == "delivered"
            await make_due(db, ids[3])
            stats = await relay.run_once()
        finally:
            await client.aclose()
    assert (stats.claimed, stats.delivered) == (1, 1)
    assert receiver.posts["/events"] == 1  # a lone event goes to /events
    assert (await row(db, ids[3]))["status"] == "delivered"
    assert [key for key, _ in receiver.requests[:10]] == [str(i) for i in ids]  # in seq order


async def test_a_failed_batch_schedules_every_event_in_it_for_a_retry(db: Database) -> None:
    ids = await insert_events(db, 5)
    receiver = Receiver(status_for=lambda _event, n: 503 if n == 1 else 202)
    async with receiving(receiver) as url:
        client = client_for(url)
        relay = OutboxRelay(db, client, RelayOptions(lease_s=5, backoff_base_s=10), rng=lambda: 0.5)
        try:
            stats = await relay.run_once()
            assert (stats.claimed, stats.retried, stats.delivered) == (5, 5, 0)
            for event_id in ids:
                failed = await row(db, event_id)
                assert failed["status"] == "pending"
                assert "dependency_error" in failed["last_error"]
                assert 4 < failed["due_in_s"] <= 5
                await make_due(db, event_id)
            stats = await relay.run_once()
        finally:
            await client.aclose()
    assert (stats.claimed, stats.delivered) == (5, 5)
    assert receiver.posts == Counter({"/events/batch": 2})


async def test_a_malformed_batch_answer_delivers_nothing(db: Database) -> None:
    ids = await insert_events(db, 3)

    async def wrong_answer(request: Request) -> JSONResponse:
        return JSONResponse({"results": [{"id": str(ids[0]), "status": "accepted"}]})

    async with serve(
        Starlette(routes=[Route("/events/batch", wrong_answer, methods=["POST"])])
    ) as url:
        client = client_for(url)
        try:
            stats = await OutboxRelay(db, client, RelayOptions(lease_s=5)).run_once()
        finally:
            await client.aclose()
    assert (stats.claimed, stats.retried, stats.delivered) == (3, 3, 0)
    for event_id in ids:
        failed = await row(db, event_id)
        assert failed["status"] == "pending"
        assert "malformed answer" in failed["last_error"]


async def test_a_receiver_without_the_batch_endpoint_gets_events_one_by_one(
    db: Database,
) -> None:
    receiver = Receiver(batch=False)
    first = await insert_events(db, 5)
    async with receiving(receiver) as url:
        client = client_for(url)
        relay = OutboxRelay(db, client, RelayOptions(lease_s=5))
        try:
            stats = await relay.run_once()
            assert (stats.claimed, stats.delivered) == (5, 5)
            second = await insert_events(db, 5)
            stats = await relay.run_once()
        finally:
            await client.aclose()
    assert (stats.claimed, stats.delivered) == (5, 5)
    # one 404 from /events/batch (Starlette's router answers it), then single posts only
    assert receiver.posts == Counter({"/events": 10})
    assert Counter(key for key, _ in receiver.requests) == Counter(str(i) for i in first + second)
    for event_id in first + second:
        assert (await row(db, event_id))["status"] == "delivered"


def test_a_lease_shorter_than_a_delivery_is_refused() -> None:
    client = client_for("http://127.0.0.1:1", total_timeout_s=2.0)
    with pytest.raises(ValueError, match="lease"):
        OutboxRelay(Database(None, 1.0), client, RelayOptions(lease_s=2.0))  # type: ignore[arg-type]


class FlakyDatabase(Database):
    """The real database, but the first ``outages`` connections fail as if it were down."""

    def __init__(self, real: Database, outages: int) -> None:
        super().__init__(real.pool, 5.0)
        self.outages = outages

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        if self.outages > 0:
            self.outages -= 1
            raise DatabaseUnavailable()
        async with super().connection() as conn:
            yield conn


async def test_run_forever_waits_out_a_database_outage_and_stops_when_told(
    db: Database,
) -> None:
    receiver = Receiver()
    [event_id] = await insert_events(db)
    flaky = FlakyDatabase(db, outages=3)
    stop = asyncio.Event()
    async with receiving(receiver) as url:
        client = client_for(url)
        relay = OutboxRelay(
            db=flaky, client=client, options=RelayOptions(lease_s=5, idle_sleep_s=0.01)
        )
        task = asyncio.create_task(relay.run_forever(stop))
        try:
            for _ in range(300):
                if receiver.count(event_id):
                    break
                assert not task.done(), task  # the outage must not end the loop
                await asyncio.sleep(0.01)
            stop.set()
            await asyncio.wait_for(task, 2)
        finally:
            await client.aclose()
    assert flaky.outages == 0
    assert receiver.count(event_id) == 1
    assert (await row(db, event_id))["status"] == "delivered"


# --- the admin API -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def admin_api(outbox_database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        env=Environment.TEST,
        database_url=outbox_database_url,
        admin_key=ADMIN_KEY,
        db_pool_max_size=5,
    )
    container = await bootstrap.build(settings)
    app = create_app(settings, container)
    app.include_router(outbox_routes.router)
    try:
        async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
            yield http
    finally:
        await container.close()


ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def test_admin_lists_dead_events_and_redelivers_one(
    db: Database, admin_api: httpx.AsyncClient
) -> None:
    dead = await insert_events(db, 3)
    [pending] = await insert_events(db)
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE outbox_events SET status = 'dead', last_error = 'HTTP 500: boom', "
            "attempts = 9 WHERE id = ANY($1)",
            dead,
        )
    r = await admin_api.get(
        "/v1/admin/outbox", params={"status": "dead", "limit": 2}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    page = r.json()
    assert [e["id"] for e in page["data"]] == [str(dead[0]), str(dead[1])]
    assert page["has_more"] is True
    assert page["data"][0]["status"] == "dead"
    assert page["data"][0]["last_error"] == "HTTP 500: boom"
    assert page["data"][0]["attempts"] == 9
    assert page["data"][0]["type"] == "transfer.completed"
    assert page["data"][0]["transfer_id"]
    r = await admin_api.get(
        "/v1/admin/outbox",
        params={"status": "dead", "limit": 2, "starting_after": str(dead[1])},
        headers=ADMIN,
    )
    assert [e["id"] for e in r.json()["data"]] == [str(dead[2])]
    assert r.json()["has_more"] is False
    r = await admin_api.get("/v1/admin/outbox", params={"status": "pending"}, headers=ADMIN)
    assert [e["id"] for e in r.json()["data"]] == [str(pending)]

    r = await admin_api.post(f"/v1/admin/outbox/{dead[0]}/redeliver", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == str(dead[0])
    assert r.json()["status"] == "pending"
    redelivered = await row(db, dead[0])
    assert redelivered["status"] == "pending"
    assert redelivered["due_in_s"] <= 0

    receiver = Receiver()
    async with receiving(receiver) as url:
        client = client_for(url)
        try:
            stats = await OutboxRelay(db, client, RelayOptions(lease_s=5)).run_once()
        finally:
            await client.aclose()
    assert stats.delivered == 2  # the redelivered event and the pending one
    assert receiver.count(dead[0]) == 1
    assert receiver.count(dead[1]) == 0
    r = await admin_api.post(f"/v1/admin/outbox/{dead[0]}/redeliver", headers=ADMIN)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"


async def test_admin_outbox_errors(admin_api: httpx.AsyncClient) -> None:
    r = await admin_api.post(f"/v1/admin/outbox/{uuid.uuid4()}/redeliver", headers=ADMIN)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = await admin_api.get("/v1/admin/outbox")
    assert r.status_code == 401
    r = await admin_api.post(
        "/v1/users", json={"name": "Ops", "email": f"{uuid.uuid4().hex}@example.com"}, headers=ADMIN
    )
    user_key = r.json()["api_key"]
    r = await admin_api.get("/v1/admin/outbox", headers={"Authorization": f"Bearer {user_key}"})
    assert r.status_code == 403
    r = await admin_api.get("/v1/admin/outbox", params={"status": "lost"}, headers=ADMIN)
    assert r.status_code == 400
    r = await admin_api.get(
        "/v1/admin/outbox", params={"starting_after": str(uuid.uuid4())}, headers=ADMIN
    )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "starting_after"


async def test_the_relay_follows_the_stored_chaos_configuration(
    db: Database, outbox_database_url: str
) -> None:
    """A rule on ``dependency:notifications`` stored by ``PUT /v1/admin/chaos`` reaches the
    relay that ``steadypay outbox-relay`` runs (built by its composition root): its deliveries
    fail with the injected fault and are retried; once the rule is off they go through."""
    from steadypay.bootstrap.relay import built_relay
    from steadypay.faults import ChaosConfig, FaultInjector, FaultRule
    from steadypay.faults import runtime as chaos_runtime

    receiver = Receiver()
    [event_id] = await insert_events(db)
    rule = FaultRule(
        component="dependency", target="notifications", failure_rate=1.0, types=("service",)
    )
    await chaos_runtime.store(db, ChaosConfig(enabled=True, rules=(rule,)), "test")
    stop = asyncio.Event()
    faults = FaultInjector()
    try:
        async with receiving(receiver) as url:
            settings = Settings(
                env=Environment.TEST,
                database_url=outbox_database_url,
                admin_key=ADMIN_KEY,
                notification_url=url,
            )
            async with built_relay(
                settings, outbox_database_url, stop, options=RelayOptions(lease_s=30), faults=faults
            ) as relay:
                assert relay is not None
                for _ in range(50):  # the follower reads the stored rule within a second
                    if faults.config.enabled:
                        break
                    await asyncio.sleep(0.1)
                assert faults.config.rules == (rule,)
                failed = await relay.run_once()
                assert (failed.claimed, failed.delivered) == (1, 0)
                assert receiver.requests == []  # the fault struck before the call left
                assert "injected" in (await row(db, event_id))["last_error"]

                await chaos_runtime.store(db, ChaosConfig(enabled=False), "test")
                for _ in range(50):
                    if not faults.config.enabled:
                        break
                    await asyncio.sleep(0.1)
                await make_due(db, event_id)
                delivered = await relay.run_once()
    finally:
        await chaos_runtime.store(db, ChaosConfig(enabled=False), "test")
    assert (delivered.claimed, delivered.delivered) == (1, 1)
    assert [key for key, _ in receiver.requests] == [str(event_id)]
