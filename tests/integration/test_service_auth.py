"""Issue 14, findings 1 and 8: the fraud and notification services answer only steadypay's own
processes (an internal service key as bearer, rotated without downtime), and ``/metrics`` of
every service needs the scrape token, or a loopback client when none is configured."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from steadypay import bootstrap
from steadypay.bootstrap.api import create_app
from steadypay.bootstrap.fraud import create_fraud_app
from steadypay.bootstrap.notifications import create_notification_app
from steadypay.config import Settings
from tests.api_client import Api
from tests.integration.conftest import serve

OLD_KEY = "old-internal-" + "o" * 8 + uuid.uuid4().hex
NEW_KEY = "new-internal-" + "n" * 8 + uuid.uuid4().hex
TOKEN = "metrics-token-" + uuid.uuid4().hex
OUTSIDE = ("10.0.0.5", 40123)
"""A client on another host, as ``request.client`` (httpx's ASGITransport sets it)."""


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def with_changes(settings: Settings, **changes: Any) -> Settings:
    """A copy of ``settings``, validated again."""
    return Settings.model_validate(settings.model_dump() | changes)


def check_body(sender: str, amount: str = "50000.00") -> dict[str, Any]:
    """A fraud check naming ``sender``, as an attacker would forge it."""
    major, minor = amount.split(".")
    return {
        "transfer_id": str(uuid.uuid4()),
        "sender_user_id": sender,
        "receiver_user_id": str(uuid.uuid4()),
        "from_wallet_id": str(uuid.uuid4()),
        "to_wallet_id": str(uuid.uuid4()),
        "amount": amount,
        "amount_minor": int(major) * 100 + int(minor),
        "currency": "USD",
        "sender_created_at": "2020-01-01T00:00:00+00:00",
    }


@asynccontextmanager
async def client_of(app: FastAPI, client: tuple[str, int]) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` in this process (its lifespan run), reached from ``client``'s address."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
            yield http


# --- finding 1: the fraud service ------------------------------------------------------------


@pytest.fixture
async def fraud_and_api(
    settings: Settings,
) -> AsyncIterator[tuple[str, Api, bootstrap.Container]]:
    """The fraud service on loopback and a payment API that asks it (as `steadypay up` wires
    them: both derive the internal key from the same admin key)."""
    async with serve(create_fraud_app(settings)) as fraud_url:
        wired = with_changes(settings, fraud_url=fraud_url)
        container = await bootstrap.build(wired)
        try:
            async with (
                serve(create_app(wired, container)) as url,
                httpx.AsyncClient(base_url=url, timeout=30) as http,
            ):
                yield fraud_url, Api(http, wired.admin_key.get_secret_value()), container  # type: ignore[union-attr]
        finally:
            await container.close()


async def test_anonymous_fraud_checks_cannot_freeze_another_users_payments(
    settings: Settings, fraud_and_api: tuple[str, Api, bootstrap.Container]
) -> None:
    """The attack of the issue: forty unauthenticated checks naming Alice with huge amounts
    made her next 2.00 transfer score 85 and be held. Now each is 401 and stores nothing."""
    fraud_url, api, container = fraud_and_api
    alice, a = await api.funded_wallet("100.00")
    _, b = await api.funded_wallet(amount="")
    assert settings.admin_key is not None
    async with httpx.AsyncClient(base_url=fraud_url, timeout=30) as attacker:
        for headers in (
            {},
            bearer("nope"),
            bearer(settings.admin_key.get_secret_value()),  # the admin key is not a service key
            {"Authorization": f"Basic {settings.internal_key()}"},
        ):
            for _ in range(10):
                r = await attacker.post(
                    "/check-fraud", json=check_body(alice["id"]), headers=headers
                )
                assert r.status_code == 401, r.text
                assert r.json()["error"]["code"] == "unauthenticated"
                assert r.headers["WWW-Authenticate"] == "Bearer"
        # an invalid body is refused for the missing key, before anything is read into it
        r = await attacker.post("/check-fraud", json={"transfer_id": "x"})
        assert r.status_code == 401
    async with container.db.connection() as conn:
        stored = await conn.fetchval(
            "SELECT count(*) FROM fraud.checks WHERE sender_user_id = $1::uuid", alice["id"]
        )
    assert stored == 0

    transfer = await api.transfer(a["id"], b["id"], "2.00")
    assert transfer.status_code == 201, transfer.text
    risk = transfer.json()["risk"]
    assert risk["source"] == "service"  # the API's own call carries the key and is answered
    assert transfer.json()["status"] == "completed", risk
    assert risk["score"] < settings.risk_review_above_score


async def test_the_internal_key_is_accepted_and_health_stays_open(settings: Settings) -> None:
    async with (
        serve(create_fraud_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        r = await http.post(
            "/check-fraud",
            json=check_body(str(uuid.uuid4()), "2.00"),
            headers=bearer(settings.internal_key()),
        )
        assert r.status_code == 200, r.text
        assert (await http.get("/health/live")).status_code == 200
        assert (await http.get("/health/ready")).status_code == 200
        document = (await http.get("/openapi.json")).json()
        scheme = document["components"]["securitySchemes"]["InternalKey"]
        assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
        assert "security" not in document["paths"]["/health/ready"]["get"]


def test_a_service_without_any_internal_key_refuses_to_start(settings: Settings) -> None:
    bare = with_changes(settings, admin_key=None, internal_keys=())
    with pytest.raises(RuntimeError, match="STEADYPAY_INTERNAL_KEYS"):
        create_fraud_app(bare)
    with pytest.raises(RuntimeError, match="STEADYPAY_INTERNAL_KEYS"):
        create_notification_app(bare)


# --- finding 1: the notification service -----------------------------------------------------


async def test_the_notification_service_takes_only_internal_keys(settings: Settings) -> None:
    """It used to take the admin key as its bearer; an operator's key is not a service's."""
    assert settings.admin_key is not None
    routes = [
        ("POST", "/events"),
        ("POST", "/events/batch"),
        ("POST", "/internal/webhook_endpoints"),
        ("POST", f"/internal/webhook_endpoints/{uuid.uuid4()}/rotate_secret"),
        ("GET", f"/internal/webhook_endpoints/{uuid.uuid4()}/deliveries"),
    ]
    async with (
        serve(create_notification_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        for headers in ({}, bearer("nope"), bearer(settings.admin_key.get_secret_value())):
            for method, path in routes:
                r = await http.request(method, path, json={}, headers=headers)
                assert r.status_code == 401, (method, path, headers)
                assert r.json()["error"]["code"] == "unauthenticated"
        internal = bearer(settings.internal_key())
        for method, path in routes:
            r = await http.request(method, path, json={}, headers=internal)
            assert r.status_code in (400, 404), (method, path, r.text)  # past authentication
        document = (await http.get("/openapi.json")).json()
        for method, path in [("post", "/events"), ("post", "/internal/webhook_endpoints")]:
            operation = document["paths"][path][method]
            assert operation["security"] == [{"InternalKey": []}]
            assert "401" in operation["responses"]


# --- finding 1: rotation without downtime ----------------------------------------------------


async def test_rotation_old_then_both_then_new(settings: Settings) -> None:
    """[old] -> [new, old] on every service (callers still send old, then new) -> [new]: every
    step answers the callers of the step before; only after the last is the old key refused."""
    body = lambda: check_body(str(uuid.uuid4()), "2.00")  # noqa: E731
    steps = [
        ((OLD_KEY,), {OLD_KEY: 200, NEW_KEY: 401}),
        ((NEW_KEY, OLD_KEY), {OLD_KEY: 200, NEW_KEY: 200}),
        ((NEW_KEY,), {OLD_KEY: 401, NEW_KEY: 200}),
    ]
    for keys, expected in steps:
        configured = with_changes(settings, internal_keys=keys)
        assert configured.internal_key() == keys[0]  # what the API and the relay send
        async with (
            serve(create_fraud_app(configured)) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as http,
        ):
            for key, status in expected.items():
                r = await http.post("/check-fraud", json=body(), headers=bearer(key))
                assert r.status_code == status, (keys, key, r.text)
            derived = with_changes(settings, internal_keys=()).internal_key()
            r = await http.post("/check-fraud", json=body(), headers=bearer(derived))
            assert r.status_code == 401  # configured keys replace the derived one


async def test_the_api_sends_the_first_key_to_fraud_during_a_rotation(
    settings: Settings,
) -> None:
    """The fraud service already on [new, old]; an API on [new, old] sends new, and is
    answered by a fraud service that has finished the rotation ([new])."""
    async with serve(create_fraud_app(with_changes(settings, internal_keys=(NEW_KEY,)))) as fraud:
        api_settings = with_changes(settings, fraud_url=fraud, internal_keys=(NEW_KEY, OLD_KEY))
        container = await bootstrap.build(api_settings)
        try:
            async with (
                serve(create_app(api_settings, container)) as url,
                httpx.AsyncClient(base_url=url, timeout=30) as http,
            ):
                api = Api(http, api_settings.admin_key.get_secret_value())  # type: ignore[union-attr]
                _, a = await api.funded_wallet("10.00")
                _, b = await api.funded_wallet(amount="")
                r = await api.transfer(a["id"], b["id"], "1.00")
                assert r.status_code == 201, r.text
                assert r.json()["risk"]["source"] == "service"
        finally:
            await container.close()


# --- finding 8: /metrics ---------------------------------------------------------------------


def service_app(which: str, settings: Settings, container: bootstrap.Container) -> FastAPI:
    if which == "api":
        return create_app(settings, container)
    if which == "fraud":
        return create_fraud_app(settings)
    return create_notification_app(settings)


SERVICES = ["api", "fraud", "notifications"]


@pytest.mark.parametrize("which", SERVICES)
async def test_metrics_without_a_token_answer_loopback_only(
    settings: Settings, container: bootstrap.Container, which: str
) -> None:
    app = service_app(which, settings, container)
    async with client_of(app, OUTSIDE) as outside:
        r = await outside.get("/metrics")
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"
        assert "STEADYPAY_METRICS_TOKEN" in r.json()["error"]["message"]
        assert (await outside.get("/health/live")).status_code == 200  # health stays open
    for loopback in [("127.0.0.1", 5000), ("::1", 5000)]:
        async with client_of(app, loopback) as local:
            r = await local.get("/metrics")
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("which", SERVICES)
async def test_metrics_with_a_token_need_it_from_everyone(
    settings: Settings, container: bootstrap.Container, which: str
) -> None:
    app = service_app(which, with_changes(settings, metrics_token=TOKEN), container)
    for where in [OUTSIDE, ("127.0.0.1", 5000)]:
        async with client_of(app, where) as http:
            for headers in ({}, bearer("wrong"), bearer(settings.internal_key())):
                r = await http.get("/metrics", headers=headers)
                assert r.status_code == 401, (where, headers, r.text)
                assert r.json()["error"]["code"] == "unauthenticated"
                assert r.headers["WWW-Authenticate"] == "Bearer"
            r = await http.get("/metrics", headers=bearer(TOKEN))
            assert r.status_code == 200, r.text
            assert "steadypay_" in r.text


async def test_the_metrics_route_documents_its_guard(
    settings: Settings, container: bootstrap.Container
) -> None:
    app = create_app(settings, container)
    operation = app.openapi()["paths"]["/metrics"]["get"]
    assert {"401", "403"} <= set(operation["responses"])
    assert operation["security"] == [{"MetricsToken": []}]
