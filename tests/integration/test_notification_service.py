"""The notification service served on loopback with its schema on real PostgreSQL, delivering to
a webhook receiver that checks signatures with ``signing.verify`` like a user's would.

The module has a database of its own: its last test runs the whole path (a deposit through
the payment API, the ledger's outbox row, the relay, the service, the webhook), and a relay
claims every due outbox row it finds.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from steadypay import bootstrap
from steadypay.api.routes import webhooks as webhook_routes
from steadypay.bootstrap.api import create_app
from steadypay.bootstrap.notifications import create_notification_app
from steadypay.config import DependencySettings, Environment, Settings
from steadypay.notifications.options import NotificationOptions
from steadypay.notifications.signing import SignatureError, parse, signature, verify
from steadypay.outbox import OutboxRelay, RelayOptions
from tests.api_client import Api
from tests.conftest import fresh_database
from tests.integration.conftest import ADMIN_KEY, free_port, serve

INTERNAL = {
    "Authorization": f"Bearer {Settings(env=Environment.TEST, admin_key=ADMIN_KEY).internal_key()}"
}
"""What steadypay's processes send: the internal key (derived from the admin key in tests)."""
FAST = NotificationOptions(
    backoff_base_s=0.05,
    backoff_cap_s=0.2,
    poll_interval_s=0.05,
    lease_s=5,
    delivery_timeout_s=1,
    allow_private_urls=True,
)


# --- a user's webhook receiver -----------------------------------------------------------------


@dataclass
class Hook:
    secrets: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    """Answers to give, in order; then 200."""
    requests: list[tuple[dict[str, str], bytes, bool]] = field(default_factory=list)
    """(headers, raw body, did the signature verify with one of ``secrets``)."""

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body, _ in self.requests]


class Receivers:
    """``POST /hooks/{name}``: one hook per name. Like a careful receiver it verifies the
    signature on the raw body first and answers 400 if it does not hold."""

    def __init__(self) -> None:
        self.hooks: dict[str, Hook] = {}

    def new(self, base_url: str, statuses: list[int] | None = None) -> tuple[str, Hook]:
        name = uuid.uuid4().hex
        self.hooks[name] = Hook(statuses=list(statuses or []))
        return f"{base_url}/hooks/{name}", self.hooks[name]

    async def receive(self, request: Request) -> Response:
        hook = self.hooks[request.path_params["name"]]
        body = await request.body()
        header = request.headers.get("steadypay-signature", "")
        verified = False
        for secret in hook.secrets:
            try:
                verify(body, header, secret)
            except SignatureError:
                continue
            verified = True
        hook.requests.append((dict(request.headers), body, verified))
        if not verified:
            return Response(status_code=400)
        return Response(status_code=hook.statuses.pop(0) if hook.statuses else 200)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hooks/{name}", self.receive, methods=["POST"])])


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition did not hold in time")


async def eventually_async(check: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition did not hold in time")


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def notify_settings(pg_server_url: str) -> Iterator[Settings]:
    with fresh_database(pg_server_url, "steadypay_notify") as url:
        yield Settings(
            env=Environment.TEST, database_url=url, admin_key=ADMIN_KEY, db_pool_max_size=5
        )


@pytest.fixture(scope="module")
async def service_url(notify_settings: Settings) -> AsyncIterator[str]:
    async with serve(create_notification_app(notify_settings, FAST)) as url:
        yield url


@pytest.fixture(scope="module")
async def internal(service_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service_url, headers=INTERNAL, timeout=10) as http:
        yield http


@pytest.fixture(scope="module")
async def receivers() -> AsyncIterator[tuple[Receivers, str]]:
    hooks = Receivers()
    async with serve(hooks.app()) as url:
        yield hooks, url


async def endpoint(
    internal: httpx.AsyncClient,
    receivers: tuple[Receivers, str],
    user_id: uuid.UUID,
    statuses: list[int] | None = None,
) -> tuple[dict[str, Any], Hook]:
    hooks, base = receivers
    url, hook = hooks.new(base, statuses)
    r = await internal.post(
        "/internal/webhook_endpoints", json={"user_id": str(user_id), "url": url}
    )
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    hook.secrets.append(created["secret"])
    return created, hook


def event(user_ids: list[uuid.UUID], *, created_at: datetime | None = None) -> dict[str, Any]:
    event_id = str(uuid.uuid4())
    return {
        "id": event_id,
        "type": "transfer.completed",
        "created_at": (created_at or datetime.now(UTC)).isoformat(),
        "user_ids": [str(u) for u in user_ids],
        "data": {"transfer": {"id": str(uuid.uuid4()), "amount": "12.34", "currency": "USD"}},
    }


async def post_event(internal: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    r = await internal.post("/events", json=body, headers={"Idempotency-Key": body["id"]})
    assert r.status_code == 202, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def latest_status(internal: httpx.AsyncClient, endpoint_id: str) -> str:
    return str((await deliveries(internal, endpoint_id))[0]["status"])


async def deliveries(internal: httpx.AsyncClient, endpoint_id: str) -> list[dict[str, Any]]:
    r = await internal.get(f"/internal/webhook_endpoints/{endpoint_id}/deliveries")
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


# --- the notification service ------------------------------------------------------------------


async def test_an_event_posted_twice_reaches_each_endpoint_once(
    internal: httpx.AsyncClient, receivers: tuple[Receivers, str]
) -> None:
    alice, bob, carol = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    alice_1, alice_hook_1 = await endpoint(internal, receivers, alice)
    _, alice_hook_2 = await endpoint(internal, receivers, alice)
    _, bob_hook = await endpoint(internal, receivers, bob)
    _, carol_hook = await endpoint(internal, receivers, carol)  # not concerned by the event
    body = event([alice, bob])

    first = await post_event(internal, body)
    again = await post_event(internal, body)
    assert first == {"id": body["id"], "status": "accepted", "duplicate": False, "deliveries": 3}
    assert again == {"id": body["id"], "status": "duplicate", "duplicate": True, "deliveries": 0}
    hooks = (alice_hook_1, alice_hook_2, bob_hook)
    await eventually(lambda: all(h.requests for h in hooks))
    await asyncio.sleep(0.3)  # several poll intervals: nothing more may arrive
    assert [len(h.requests) for h in hooks] == [1, 1, 1]
    assert carol_hook.requests == []

    headers, raw, verified = alice_hook_1.requests[0]
    assert verified
    assert headers["steadypay-event-id"] == body["id"]
    assert headers["content-type"] == "application/json"
    delivered = json.loads(raw)
    assert delivered == {k: v for k, v in body.items() if k != "user_ids"}  # no one else's ids
    [attempt] = await deliveries(internal, alice_1["id"])
    assert attempt["event_id"] == body["id"]
    assert attempt["event_type"] == "transfer.completed"
    assert (attempt["status"], attempt["attempts"], attempt["last_status_code"]) == (
        "delivered",
        1,
        200,
    )
    assert attempt["delivered_at"] is not None


async def test_a_batch_records_each_event_once_and_rejects_only_the_bad_ones(
    internal: httpx.AsyncClient, receivers: tuple[Receivers, str]
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    _, alice_hook_1 = await endpoint(internal, receivers, alice)
    _, alice_hook_2 = await endpoint(internal, receivers, alice)
    _, bob_hook = await endpoint(internal, receivers, bob)
    earlier = event([bob])
    await post_event(internal, earlier)
    first, second = event([alice]), event([bob, alice, bob])
    bad = {**event([alice]), "created_at": "yesterday"}
    batch = [first, second, bad, first, earlier, "not an event"]

    r = await internal.post("/events/batch", json={"events": batch})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [(x["id"], x["status"]) for x in results] == [
        (first["id"], "accepted"), (second["id"], "accepted"), (bad["id"], "rejected"),
        (first["id"], "duplicate"), (earlier["id"], "duplicate"), (None, "rejected"),
    ]  # fmt: skip
    assert [x.get("deliveries") for x in results] == [2, 3, None, 0, 0, None]
    assert results[2]["error"]["code"] == "validation_error"
    assert results[2]["error"]["param"] == "events[2]"
    assert "created_at" in results[2]["error"]["message"]
    assert results[5]["error"]["param"] == "events[5]"

    again = await internal.post("/events/batch", json={"events": [first, second]})
    assert [x["status"] for x in again.json()["results"]] == ["duplicate", "duplicate"]
    hooks = (alice_hook_1, alice_hook_2, bob_hook)
    await eventually(
        lambda: all(len(h.requests) >= 2 for h in hooks[:2]) and len(bob_hook.requests) >= 2
    )
    await asyncio.sleep(0.3)  # several poll intervals: nothing more may arrive
    assert sorted(b["id"] for b in alice_hook_1.bodies()) == sorted([first["id"], second["id"]])
    assert sorted(b["id"] for b in alice_hook_2.bodies()) == sorted([first["id"], second["id"]])
    assert sorted(b["id"] for b in bob_hook.bodies()) == sorted([earlier["id"], second["id"]])

    for body, why in [
        ({"events": []}, "empty"),
        ({"events": [first] * 1001}, "over the limit"),
        ({"event": [first]}, "no events"),
        ([first], "not an object"),
    ]:
        r = await internal.post("/events/batch", json=body)
        assert r.status_code == 400, why
        assert r.json()["error"]["code"] == "validation_error", why
    r = await internal.post(
        "/events/batch", content=b"{", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400


async def test_a_failing_receiver_is_retried_until_it_answers_2xx(
    internal: httpx.AsyncClient, receivers: tuple[Receivers, str]
) -> None:
    user = uuid.uuid4()
    created, hook = await endpoint(internal, receivers, user, statuses=[500, 503, 204])
    body = event([user])
    await post_event(internal, body)
    await eventually(lambda: len(hook.requests) >= 3)

    async def delivered() -> bool:
        return await latest_status(internal, created["id"]) == "delivered"

    await eventually_async(delivered)
    [attempt] = await deliveries(internal, created["id"])
    assert attempt["attempts"] == 3
    assert attempt["last_status_code"] == 204
    assert attempt["last_error"] is None
    assert len(hook.requests) == 3  # and not one more once it succeeded
    assert all(verified for _, _, verified in hook.requests)
    assert len({raw for _, raw, _ in hook.requests}) == 1  # the same bytes every time


async def test_a_delivery_still_failing_72h_after_the_event_is_given_up(
    internal: httpx.AsyncClient, receivers: tuple[Receivers, str]
) -> None:
    user = uuid.uuid4()
    created, hook = await endpoint(internal, receivers, user, statuses=[500] * 10)
    await post_event(internal, event([user], created_at=datetime.now(UTC) - timedelta(hours=73)))
    await eventually(lambda: len(hook.requests) >= 1)

    async def failed() -> bool:
        return await latest_status(internal, created["id"]) == "failed"

    await eventually_async(failed)
    await asyncio.sleep(0.3)
    [attempt] = await deliveries(internal, created["id"])
    assert (attempt["attempts"], attempt["last_status_code"]) == (1, 500)
    assert "500" in attempt["last_error"]
    assert attempt["next_attempt_at"] is None
    assert len(hook.requests) == 1


async def test_after_a_rotation_deliveries_carry_both_signatures_new_first(
    internal: httpx.AsyncClient, receivers: tuple[Receivers, str], notify_settings: Settings
) -> None:
    user = uuid.uuid4()
    created, hook = await endpoint(internal, receivers, user)
    old = created["secret"]
    r = await internal.post(
        f"/internal/webhook_endpoints/{created['id']}/rotate_secret",
        headers={"Idempotency-Key": "rotation-1"},
    )
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new.startswith("whsec_")
    assert new != old
    window = datetime.fromisoformat(r.json()["previous_secret_expires_at"]) - datetime.now(UTC)
    assert timedelta(hours=23, minutes=59) < window <= timedelta(hours=24)
    replay = await internal.post(
        f"/internal/webhook_endpoints/{created['id']}/rotate_secret",
        headers={"Idempotency-Key": "rotation-1"},
    )
    assert replay.json()["secret"] == new  # a retried rotation does not rotate twice
    hook.secrets[:] = [old]  # a receiver that has not switched yet

    await post_event(internal, event([user]))
    await eventually(lambda: len(hook.requests) == 1)
    headers, raw, verified = hook.requests[0]
    assert verified
    timestamp, signatures = parse(headers["steadypay-signature"])
    assert signatures == [signature(raw, new, timestamp), signature(raw, old, timestamp)]
    verify(raw, headers["steadypay-signature"], new)
    verify(raw, headers["steadypay-signature"], old)

    # Once the window is over, only the new secret signs.
    conn = await asyncpg.connect(notify_settings.require_database_url())
    try:
        await conn.execute(
            "UPDATE notifications.webhook_endpoints "
            "SET previous_secret_expires_at = now() - interval '1 second' WHERE id = $1",
            uuid.UUID(created["id"]),
        )
    finally:
        await conn.close()
    hook.secrets[:] = [new]
    await post_event(internal, event([user]))
    await eventually(lambda: len(hook.requests) == 2)
    headers, raw, verified = hook.requests[1]
    assert verified
    _, signatures = parse(headers["steadypay-signature"])
    assert len(signatures) == 1
    with pytest.raises(SignatureError):
        verify(raw, headers["steadypay-signature"], old)


async def test_internal_api_contract(
    internal: httpx.AsyncClient, service_url: str, receivers: tuple[Receivers, str]
) -> None:
    user = uuid.uuid4()
    hooks, base = receivers
    url, _ = hooks.new(base)
    body = {"user_id": str(user), "url": url}
    async with httpx.AsyncClient(base_url=service_url) as anonymous:
        for method, path in [
            ("POST", "/events"),
            ("POST", "/events/batch"),
            ("POST", "/internal/webhook_endpoints"),
            ("GET", f"/internal/webhook_endpoints/{uuid.uuid4()}/deliveries"),
        ]:
            r = await anonymous.request(method, path, json=body)
            assert r.status_code == 401, path
            r = await anonymous.request(
                method, path, json=body, headers={"Authorization": "Bearer nope"}
            )
            assert r.status_code == 401, path
        assert (await anonymous.get("/health/live")).status_code == 200
        ready = await anonymous.get("/health/ready")
        assert ready.status_code == 200
        assert ready.headers["content-type"] == "application/health+json"
        assert ready.json()["serviceId"] == "steadypay-notifications"
        checks = ready.json()["checks"]
        assert set(checks) == {
            "postgresql:responseTime", "postgresql:connections", "deliveryWorker:running",
            "deliveries:backlog", "deliveries:oldestDueAge",
        }  # fmt: skip
        assert checks["deliveryWorker:running"][0] == checks["deliveryWorker:running"][0] | {
            "status": "pass", "observedValue": True
        }  # fmt: skip
        assert isinstance(checks["deliveries:backlog"][0]["observedValue"], int)

    first = await internal.post(
        "/internal/webhook_endpoints", json=body, headers={"Idempotency-Key": "k1"}
    )
    again = await internal.post(
        "/internal/webhook_endpoints", json=body, headers={"Idempotency-Key": "k1"}
    )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert first.json()["secret"].startswith("whsec_")
    other = await internal.post(
        "/internal/webhook_endpoints",
        json={"user_id": str(user), "url": url + "x"},
        headers={"Idempotency-Key": "k1"},
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reuse"

    for bad in ["ftp://example.com/x", "example.com/hook", "http://user:pw@example.com/"]:
        r = await internal.post(
            "/internal/webhook_endpoints", json={"user_id": str(user), "url": bad}
        )
        assert r.status_code == 400, bad
        assert r.json()["error"]["param"] == "url"

    endpoint_id = first.json()["id"]
    r = await internal.get(
        f"/internal/webhook_endpoints/{endpoint_id}/deliveries", params={"user_id": str(user)}
    )
    assert r.status_code == 200
    r = await internal.get(
        f"/internal/webhook_endpoints/{endpoint_id}/deliveries",
        params={"user_id": str(uuid.uuid4())},
    )
    assert r.status_code == 404  # someone else's endpoint looks missing
    r = await internal.post(
        f"/internal/webhook_endpoints/{endpoint_id}/rotate_secret",
        params={"user_id": str(uuid.uuid4())},
    )
    assert r.status_code == 404

    mismatched = event([user])
    r = await internal.post("/events", json=mismatched, headers={"Idempotency-Key": "other"})
    assert r.status_code == 400
    r = await internal.post("/events", json={**mismatched, "created_at": "2026-11-25T10:00:00"})
    assert r.status_code == 400  # a timestamp without a zone is ambiguous


# --- the payment API's webhooks router, and the whole path -------------------------------------


def payment_settings(notify_settings: Settings, notifications_url: str) -> Settings:
    return Settings(
        env=Environment.TEST,
        database_url=notify_settings.require_database_url(),
        admin_key=ADMIN_KEY,
        db_pool_max_size=5,
        dependencies={
            "notifications": DependencySettings(
                url=notifications_url, total_timeout_s=2.0, attempt_timeout_s=1.0
            )
        },
    )


@pytest.fixture(scope="module")
async def payment(
    notify_settings: Settings, service_url: str
) -> AsyncIterator[tuple[Api, bootstrap.Container]]:
    settings = payment_settings(notify_settings, service_url)
    container = await bootstrap.build(settings)
    app = create_app(settings, container)
    app.include_router(webhook_routes.router)
    try:
        async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
            yield Api(http, ADMIN_KEY), container
    finally:
        await container.close()


async def test_a_deposit_reaches_the_users_webhook_through_relay_and_service(
    payment: tuple[Api, bootstrap.Container], receivers: tuple[Receivers, str]
) -> None:
    api, container = payment
    hooks, base = receivers
    user = await api.user()
    url, hook = hooks.new(base)
    r = await api.post("/v1/webhook_endpoints", {"url": url}, key=user["api_key"])
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["user_id"] == user["id"]
    assert created["url"] == url
    assert created["secret"].startswith("whsec_")
    hook.secrets.append(created["secret"])

    wallet = await api.wallet(user["id"])
    deposit = await api.deposit(wallet["id"], "25.00")
    relay = OutboxRelay(
        container.db,
        container.dependencies["notifications"],
        RelayOptions(lease_s=5),
        headers=INTERNAL,
    )
    stats = await relay.run_once()
    assert stats.delivered >= 1
    assert stats.retried == stats.dead == 0
    await eventually(lambda: bool(hook.requests))
    _, raw, verified = hook.requests[0]
    assert verified
    delivered = json.loads(raw)
    assert delivered["type"] == "transfer.completed"
    assert delivered["data"]["transfer"]["id"] == deposit["id"]
    assert delivered["data"]["transfer"]["amount"] == "25.00"
    assert "user_ids" not in delivered

    r = await api.get(f"/v1/webhook_endpoints/{created['id']}/deliveries", key=user["api_key"])
    assert r.status_code == 200, r.text
    [attempt] = r.json()["data"]
    assert attempt["event_id"] == delivered["id"]
    await eventually_async(lambda: _status_is(api, created["id"], user["api_key"], "delivered"))


async def _status_is(api: Api, endpoint_id: str, key: str, status: str) -> bool:
    r = await api.get(f"/v1/webhook_endpoints/{endpoint_id}/deliveries", key=key)
    return bool(r.json()["data"][0]["status"] == status)


async def test_payment_api_webhook_permissions_and_retries(
    payment: tuple[Api, bootstrap.Container], receivers: tuple[Receivers, str]
) -> None:
    api, _ = payment
    hooks, base = receivers
    alice, bob = await api.user(), await api.user()
    url, _ = hooks.new(base)

    r = await api.post("/v1/webhook_endpoints", {"url": url})
    assert r.status_code == 400  # the admin must say whose
    assert r.json()["error"]["param"] == "user_id"
    r = await api.post("/v1/webhook_endpoints", {"url": url, "user_id": str(uuid.uuid4())})
    assert r.status_code == 404
    r = await api.post("/v1/webhook_endpoints", {"url": url, "user_id": alice["id"]})
    assert r.status_code == 201, r.text
    assert r.json()["user_id"] == alice["id"]
    r = await api.post(
        "/v1/webhook_endpoints", {"url": url, "user_id": alice["id"]}, key=bob["api_key"]
    )
    assert r.status_code == 403
    r = await api.post("/v1/webhook_endpoints", {"url": "not a url"}, key=bob["api_key"])
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "url"
    r = await api.http.post("/v1/webhook_endpoints", json={"url": url})
    assert r.status_code == 401

    first = await api.post("/v1/webhook_endpoints", {"url": url}, key=alice["api_key"], idem="w1")
    again = await api.post("/v1/webhook_endpoints", {"url": url}, key=alice["api_key"], idem="w1")
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]  # a retry does not register twice
    theirs = await api.post("/v1/webhook_endpoints", {"url": url}, key=bob["api_key"], idem="w1")
    assert theirs.json()["id"] != first.json()["id"]  # keys are per caller

    alices = first.json()["id"]
    r = await api.get(f"/v1/webhook_endpoints/{alices}/deliveries", key=bob["api_key"])
    assert r.status_code == 404
    r = await api.get(f"/v1/webhook_endpoints/{alices}/deliveries")  # the admin sees all
    assert r.status_code == 200
    assert r.json() == {"data": [], "has_more": False}
    r = await api.post(f"/v1/webhook_endpoints/{alices}/rotate_secret", {}, key=bob["api_key"])
    assert r.status_code == 404
    r = await api.post(f"/v1/webhook_endpoints/{alices}/rotate_secret", {}, key=alice["api_key"])
    assert r.status_code == 200, r.text
    assert r.json()["secret"] != first.json()["secret"]
    assert r.json()["previous_secret_expires_at"] is not None


async def test_without_the_notification_service_webhook_calls_are_503(
    notify_settings: Settings, payment: tuple[Api, bootstrap.Container]
) -> None:
    api, _ = payment
    user = await api.user()
    settings = payment_settings(notify_settings, f"http://127.0.0.1:{free_port()}")
    app = create_app(settings)
    app.include_router(webhook_routes.router)
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as http:
        down = Api(http, ADMIN_KEY)
        r = await down.post(
            "/v1/webhook_endpoints", {"url": "http://example.com/h"}, key=user["api_key"]
        )
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "dependency_error"
        assert "Retry-After" in r.headers
        r = await down.get(f"/v1/webhook_endpoints/{uuid.uuid4()}/deliveries", key=user["api_key"])
        assert r.status_code == 503
