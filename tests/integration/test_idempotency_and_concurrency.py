"""Idempotency (Stripe's semantics) and concurrency, through the API on real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import asyncpg

from steadypay.bootstrap import Container
from steadypay.idempotency.service import purge_once
from tests.api_client import Api, new_key


async def _entry_count(api: Api, wallet_id: str) -> int:
    page = (await api.get(f"/v1/wallets/{wallet_id}/entries", limit=100)).json()
    return len(page["data"])


async def test_replay_returns_stored_response_and_moves_money_once(api: Api) -> None:
    _, a = await api.funded_wallet("10.00")
    _, b = await api.funded_wallet(amount="")
    key = new_key()
    first = await api.transfer(a["id"], b["id"], "3.00", idem=key)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    again = await api.transfer(a["id"], b["id"], "3.00", idem=key)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    # same meaning, different spelling of the amount: still the same request
    spelled = await api.transfer(a["id"], b["id"], "3.0", idem=key)
    assert spelled.headers["idempotent-replayed"] == "true"
    assert await api.balance(a["id"]) == "7.00"
    assert await _entry_count(api, b["id"]) == 1


async def test_business_failure_is_stored_and_replayed(api: Api) -> None:
    _, a = await api.funded_wallet("1.00")
    _, b = await api.funded_wallet(amount="")
    key = new_key()
    first = await api.transfer(a["id"], b["id"], "5.00", idem=key)
    assert first.status_code == 422
    await api.deposit(a["id"], "10.00")  # funds arrive: the replay must not change its answer
    again = await api.transfer(a["id"], b["id"], "5.00", idem=key)
    assert again.status_code == 422
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await api.balance(b["id"]) == "0.00"


async def test_same_key_different_body_is_422_and_changes_nothing(api: Api) -> None:
    _, a = await api.funded_wallet("10.00")
    _, b = await api.funded_wallet(amount="")
    key = new_key()
    assert (await api.transfer(a["id"], b["id"], "1.00", idem=key)).status_code == 201
    r = await api.transfer(a["id"], b["id"], "2.00", idem=key)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "idempotency_key_reuse"
    assert await api.balance(b["id"]) == "1.00"
    # the key is also bound to the endpoint: a deposit may not reuse it either
    r = await api.post(
        "/v1/deposits", {"wallet_id": b["id"], "amount": "1.00", "currency": "USD"}, idem=key
    )
    assert r.json()["error"]["code"] == "idempotency_key_reuse"


async def test_validation_errors_are_not_stored(api: Api) -> None:
    _, a = await api.funded_wallet("10.00")
    _, b = await api.funded_wallet(amount="")
    key = new_key()
    bad = await api.transfer(a["id"], b["id"], "1.001", idem=key)
    assert bad.status_code == 400
    good = await api.transfer(a["id"], b["id"], "1.00", idem=key)
    assert good.status_code == 201
    assert "idempotent-replayed" not in good.headers


async def test_keys_are_scoped_to_the_principal(api: Api) -> None:
    alice, a = await api.funded_wallet("10.00")
    bob, b = await api.funded_wallet("10.00")
    key = new_key()
    r1 = await api.transfer(a["id"], b["id"], "1.00", key=alice["api_key"], idem=key)
    r2 = await api.transfer(b["id"], a["id"], "2.00", key=bob["api_key"], idem=key)
    assert (r1.status_code, r2.status_code) == (201, 201)
    assert "idempotent-replayed" not in r2.headers
    assert await api.balance(a["id"]) == "11.00"


async def test_fifty_concurrent_duplicates_have_exactly_one_effect(api: Api) -> None:
    _, a = await api.funded_wallet("100.00")
    _, b = await api.funded_wallet(amount="")
    key = new_key()
    responses = await asyncio.gather(
        *(api.transfer(a["id"], b["id"], "7.00", idem=key) for _ in range(50))
    )
    statuses = Counter(r.status_code for r in responses)
    # Duplicates wait for the first and replay it (or, past the lock timeout, get 409 in_use).
    assert set(statuses) <= {201, 409}, statuses
    created = [r for r in responses if r.status_code == 201]
    assert len([r for r in created if "idempotent-replayed" not in r.headers]) == 1
    assert len({r.json()["id"] for r in created}) == 1
    assert await api.balance(a["id"]) == "93.00"
    assert await api.balance(b["id"]) == "7.00"
    assert await _entry_count(api, b["id"]) == 1


async def test_two_hundred_opposing_transfers_do_not_deadlock(api: Api) -> None:
    alice, a = await api.funded_wallet("1000.00")
    bob, b = await api.funded_wallet("1000.00")
    calls = [
        api.transfer(a["id"], b["id"], "1.00", key=alice["api_key"])
        if i % 2 == 0
        else api.transfer(b["id"], a["id"], "2.00", key=bob["api_key"])
        for i in range(200)
    ]
    responses = await asyncio.gather(*calls)
    assert Counter(r.status_code for r in responses) == {201: 200}, [
        r.text for r in responses if r.status_code != 201
    ][:3]
    # 100 x 1.00 one way, 100 x 2.00 the other: conserved, and exactly as expected
    assert await api.balance(a["id"]) == "1100.00"
    assert await api.balance(b["id"]) == "900.00"
    assert await _entry_count(api, a["id"]) == 100  # page limit; there are 201


async def test_concurrent_overdraw_never_goes_negative(api: Api) -> None:
    alice, a = await api.funded_wallet("10.00")
    _, b = await api.funded_wallet(amount="")
    responses = await asyncio.gather(
        *(api.transfer(a["id"], b["id"], "1.00", key=alice["api_key"]) for _ in range(30))
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 10, 422: 20}
    assert await api.balance(a["id"]) == "0.00"
    assert await api.balance(b["id"]) == "10.00"


async def test_expired_keys_are_purged(api: Api, container: Container) -> None:
    _, a = await api.funded_wallet("10.00")
    _, b = await api.funded_wallet(amount="")
    key = new_key()
    assert (await api.transfer(a["id"], b["id"], "1.00", idem=key)).status_code == 201
    async with container.db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT expires_at - created_at AS ttl FROM idempotency_keys WHERE key = $1", key
        )
        assert row is not None
        assert row["ttl"].total_seconds() >= 24 * 3600
        await conn.execute(
            "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = $1",
            key,
        )
    removed = await purge_once(container.db)
    assert removed is not None
    assert removed >= 1
    async with container.db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = $1", key) == 0


async def test_stored_body_is_json_text(container: Container, api: Api) -> None:
    _, a = await api.funded_wallet("1.00")
    key = new_key()
    r = await api.post(
        "/v1/deposits", {"wallet_id": a["id"], "amount": "1.00", "currency": "USD"}, idem=key
    )
    async with container.db.connection() as conn:
        row: asyncpg.Record | None = await conn.fetchrow(
            "SELECT response_status, response_body, transfer_id FROM idempotency_keys "
            "WHERE key = $1",
            key,
        )
    assert row is not None
    assert row["response_status"] == 201
    assert json.loads(row["response_body"]) == r.json()
    assert str(row["transfer_id"]) == r.json()["id"]
