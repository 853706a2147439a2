"""POST /v1/transfers/batch over real HTTP on real PostgreSQL."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from tests.api_client import Api


def item(source: dict[str, Any], target: dict[str, Any], amount: str) -> dict[str, str]:
    return {
        "from_wallet_id": source["id"],
        "to_wallet_id": target["id"],
        "amount": amount,
        "currency": "USD",
    }


async def post_batch(api: Api, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    return await api.post("/v1/transfers/batch", body, idem=key or str(uuid.uuid4()))


async def test_items_come_back_in_order_each_as_if_executed_one_by_one(api: Api) -> None:
    _, a = await api.funded_wallet("10.00")
    _, b = await api.funded_wallet("")
    _, c = await api.funded_wallet("")
    transfers = [
        item(a, b, "6.00"),
        item(a, c, "5.00"),  # 4.00 left: insufficient, and only this one fails
        item(b, c, "6.00"),  # b received 6.00 just before: fine
        item(a, c, "4.00"),
    ]
    key = str(uuid.uuid4())
    r = await post_batch(api, {"transfers": transfers}, key)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [d["index"] for d in data] == [0, 1, 2, 3]
    assert [d["status"] for d in data] == ["completed", "failed", "completed", "completed"]
    assert data[1]["error"]["code"] == "insufficient_funds"
    assert data[0]["transfer"]["amount"] == "6.00"
    balances = [await api.balance(w["id"]) for w in (a, b, c)]
    assert balances == ["0.00", "0.00", "10.00"]

    again = await post_batch(api, {"transfers": transfers}, key)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert [d["status"] for d in again.json()["data"]] == [d["status"] for d in data]
    assert [d["transfer"]["id"] for d in again.json()["data"] if d["transfer"]] == [
        d["transfer"]["id"] for d in data if d["transfer"]
    ]
    assert [await api.balance(w["id"]) for w in (a, b, c)] == balances

    other = await post_batch(api, {"transfers": transfers[:3]}, key)  # same key, other batch
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reuse"
    longer = await post_batch(api, {"transfers": [*transfers, item(c, a, "1.00")]}, key)
    assert longer.status_code == 422
    assert [await api.balance(w["id"]) for w in (a, b, c)] == balances


async def test_an_atomic_batch_is_all_or_nothing(api: Api) -> None:
    _, a = await api.funded_wallet("10.00")
    _, b = await api.funded_wallet("")
    body = {"transfers": [item(a, b, "6.00"), item(a, b, "5.00")], "atomic": True}
    r = await post_batch(api, body)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "atomic_batch_failed"
    assert [(i["index"], i["error"]["code"]) for i in error["items"]] == [(1, "insufficient_funds")]
    assert await api.balance(a["id"]) == "10.00"
    listed = await api.get("/v1/transfers", wallet_id=b["id"])
    assert listed.json()["data"] == []  # not even a failed transfer was recorded

    ok = await post_batch(api, {"transfers": [item(a, b, "6.00"), item(a, b, "4.00")],
                                "atomic": True})  # fmt: skip
    assert ok.status_code == 200
    assert [d["status"] for d in ok.json()["data"]] == ["completed", "completed"]
    assert await api.balance(b["id"]) == "10.00"


async def test_the_limit_is_8189_transfers(api: Api) -> None:
    _, a = await api.funded_wallet("100.00")
    _, b = await api.funded_wallet("")
    over = await post_batch(api, {"transfers": [item(a, b, "0.01")] * 8190})
    assert over.status_code == 400
    assert over.json()["error"]["code"] == "validation_error"
    started = time.perf_counter()
    full = await post_batch(api, {"transfers": [item(a, b, "0.01")] * 8189})
    elapsed = time.perf_counter() - started
    assert full.status_code == 200, full.text[:500]
    assert len(full.json()["data"]) == 8189
    assert await api.balance(b["id"]) == "81.89"
    print(f"8189 transfers in one batch: {elapsed:.2f} s")  # a figure, not an assertion


async def test_only_the_admin_may_send_a_batch_and_a_key_is_required(api: Api) -> None:
    user, a = await api.funded_wallet("10.00")
    _, b = await api.funded_wallet("")
    body = {"transfers": [item(a, b, "1.00")]}
    r = await api.post("/v1/transfers/batch", body, key=user["api_key"], idem="k-" + "x" * 10)
    assert r.status_code == 403
    r = await api.post("/v1/transfers/batch", body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "idempotency_key_required"
    for bad in ({"transfers": []}, {"transfers": [item(a, a, "1.00")]}, {"items": []}):
        r = await post_batch(api, bad)
        assert r.status_code == 400, bad
    assert await api.balance(a["id"]) == "10.00"
