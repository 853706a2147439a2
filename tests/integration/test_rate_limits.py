"""Rate limits (issue 14, finding 6): unknown keys per client address, requests per API key,
shared through a real Redis, and what a client sees (429, Retry-After, RateLimit headers).

Each test serves the session's container with its own small limits on a real uvicorn, and
sends from its own loopback address (127.0.0.x) where the address matters."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from steadypay import bootstrap
from steadypay.bootstrap.api import create_app
from steadypay.config import Settings
from steadypay.errors import RateLimited
from steadypay.http.ratelimit import RateLimits, RatePolicy, shared_storage
from tests.api_client import Api
from tests.integration.conftest import ADMIN_KEY, serve
from tests.redis_server import free_port, redis_url_fixture

redis_url = redis_url_fixture()


def lookups(outcome: str) -> float:
    value = REGISTRY.get_sample_value("steadypay_auth_key_lookups_total", {"outcome": outcome})
    return value or 0.0


@asynccontextmanager
async def limited(
    settings: Settings, container: bootstrap.Container, limits: RateLimits
) -> AsyncIterator[str]:
    async with serve(
        create_app(settings, dataclasses.replace(container, rate_limits=limits))
    ) as url:
        yield url


def client(base_url: str, address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=base_url, transport=transport, timeout=30.0)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_unknown_keys_from_one_address_get_429_without_database_lookups(
    settings: Settings, container: bootstrap.Container, api: Api
) -> None:
    user = await api.user()  # a real user, whose key we use before and during the attack
    limits = RateLimits(RatePolicy(auth_failures="5/minute"))
    async with (
        limited(settings, container, limits) as url,
        client(url, "127.0.0.11") as attacker,
        client(url, "127.0.0.12") as neighbour,
    ):
        before_attack = await attacker.get("/v1/transfers", headers=bearer(user["api_key"]))
        assert before_attack.status_code == 200, before_attack.text
        unknown_before = lookups("unknown")

        statuses = []
        for _ in range(40):
            r = await attacker.get("/v1/reviews", headers=bearer("sp_" + secrets.token_urlsafe(32)))
            statuses.append(r.status_code)
        assert statuses == [401] * 5 + [429] * 35
        assert lookups("unknown") - unknown_before == 5  # the 35 refusals asked no database

        refused = await attacker.get("/v1/reviews", headers=bearer("sp_nope"))
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert refused.json()["error"]["limit"] == "auth_failures"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.headers["RateLimit-Policy"] == "5;w=60"
        assert refused.headers["RateLimit"].startswith("limit=5, remaining=0, reset=")

        # once this worker knows the address is blocked, the ASGI shortcut refuses before
        # routing: even an unknown route answers 429, not 404
        shortcut = await attacker.get("/v1/no-such-route", headers=bearer("sp_nope"))
        assert shortcut.status_code == 429
        assert shortcut.json()["error"]["request_id"] == shortcut.headers["X-Request-Id"]
        # the user who authenticated from this address before keeps working ...
        during = await attacker.get("/v1/transfers", headers=bearer(user["api_key"]))
        assert during.status_code == 200, during.text
        # ... and another address is not affected
        other = await neighbour.get("/v1/reviews", headers=bearer("sp_" + secrets.token_urlsafe(8)))
        assert other.status_code == 401
        # a request without any key costs no lookup and is a plain 401
        assert (await neighbour.get("/v1/reviews")).status_code == 401


async def test_each_api_key_has_its_own_budget(
    settings: Settings, container: bootstrap.Container, api: Api
) -> None:
    busy, quiet = await api.user(), await api.user()
    limits = RateLimits(RatePolicy(per_user_key="5/minute", per_admin_key="7/minute"))
    async with limited(settings, container, limits) as url, client(url, "127.0.0.13") as http:
        path = "/v1/transfers"
        codes = [
            (await http.get(path, headers=bearer(busy["api_key"]))).status_code for _ in range(8)
        ]
        assert codes == [200] * 5 + [429] * 3
        limited_body = (await http.get(path, headers=bearer(busy["api_key"]))).json()
        assert limited_body["error"] == limited_body["error"] | {
            "code": "rate_limited",
            "limit": "user_key",
        }

        quiet_path = "/v1/transfers"
        assert (await http.get(quiet_path, headers=bearer(quiet["api_key"]))).status_code == 200

        admin = [
            (await http.get("/v1/reviews", headers=bearer(ADMIN_KEY))).status_code for _ in range(9)
        ]
        assert admin == [200] * 7 + [429] * 2


async def test_limits_in_redis_are_shared_by_workers(redis_url: str) -> None:
    """Two RateLimits on one Redis (two workers, or two hosts) share one count."""
    policy = RatePolicy(per_user_key="6/minute")
    first = RateLimits(policy, storage=shared_storage(redis_url, timeout_s=0.5))
    second = RateLimits(policy, storage=shared_storage(redis_url, timeout_s=0.5))
    actor = f"user:{secrets.token_hex(8)}"
    for worker in (first, second, first, second, first, second):
        await worker.admit(actor, operator=False)
    with pytest.raises(RateLimited):
        await second.admit(actor, operator=False)
    with pytest.raises(RateLimited):
        await first.admit(actor, operator=False)
    await first.aclose()
    await second.aclose()


async def test_redis_down_falls_back_to_local_limits() -> None:
    """A dead Redis never turns into an error for the caller: the worker counts locally."""
    port = free_port()
    limits = RateLimits(
        RatePolicy(per_user_key="3/minute", auth_failures="2/minute"),
        storage=shared_storage(f"redis://127.0.0.1:{port}/0", timeout_s=0.2),
    )
    actor = "user:" + secrets.token_hex(8)
    for _ in range(3):
        await limits.admit(actor, operator=False)  # nothing listens on the port
    with pytest.raises(RateLimited):
        await limits.admit(actor, operator=False)
    await limits.failed_lookup("10.1.2.3")
    await limits.before_lookup("10.1.2.3", b"k" * 32)
    await limits.failed_lookup("10.1.2.3")
    with pytest.raises(RateLimited):
        await limits.before_lookup("10.1.2.3", b"k" * 32)
    await limits.aclose()


async def test_a_good_key_passes_a_blocked_address_on_every_worker(redis_url: str) -> None:
    """Worker A saw the key succeed; worker B never did, yet lets it through an address that
    is over its budget (through Redis), and refuses an unknown key from there."""
    policy = RatePolicy(auth_failures="2/minute")
    clients = [Redis.from_url(redis_url), Redis.from_url(redis_url)]
    a, b = (
        RateLimits(policy, storage=shared_storage(redis_url, timeout_s=0.5), redis=client)
        for client in clients
    )
    address = f"10.9.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
    good = secrets.token_bytes(32)
    await a.before_lookup(address, good)
    await a.succeeded(good)
    for _ in range(2):
        await b.failed_lookup(address)
    with pytest.raises(RateLimited):
        await b.before_lookup(address, secrets.token_bytes(32))
    await b.before_lookup(address, good)  # known to be good: allowed on B too
    for limits in (a, b):
        await limits.aclose()
    for client in clients:
        await client.aclose()
