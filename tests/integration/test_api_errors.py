"""Bad input gets a clear error with a stable code and changes nothing; business failures are
recorded as failed transfers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.api_client import Api, new_key


async def _ledger_state(api: Api, *wallet_ids: str) -> list[tuple[str, int]]:
    state = []
    for wallet_id in wallet_ids:
        balance = await api.balance(wallet_id)
        entries = (await api.get(f"/v1/wallets/{wallet_id}/entries", limit=100)).json()["data"]
        state.append((balance, len(entries)))
    return state


BAD_TRANSFER_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("json number", {"amount": 12.34}, "amount"),
    ("json integer", {"amount": 12}, "amount"),
    ("too many decimals", {"amount": "1.001"}, "amount"),
    ("zero", {"amount": "0.00"}, "amount"),
    ("negative", {"amount": "-5.00"}, "amount"),
    ("exponent", {"amount": "1e3"}, "amount"),
    ("garbage", {"amount": "abc"}, "amount"),
    ("above maximum", {"amount": "10000000000000.01"}, "amount"),
    ("unknown currency", {"currency": "XYZ"}, "currency"),
    ("lower-case currency", {"currency": "usd"}, "currency"),
    ("missing amount", {"amount": None}, "amount"),
    ("bad uuid", {"to_wallet_id": "not-a-uuid"}, "to_wallet_id"),
    ("unknown field", {"memo": "hi"}, "memo"),
]


@pytest.mark.parametrize(("case", "change", "param"), BAD_TRANSFER_BODIES)
async def test_invalid_transfer_is_400_and_changes_nothing(
    api: Api, case: str, change: dict[str, Any], param: str
) -> None:
    _, a = await api.funded_wallet("50.00")
    _, b = await api.funded_wallet(amount="")
    before = await _ledger_state(api, a["id"], b["id"])
    body: dict[str, Any] = {
        "from_wallet_id": a["id"], "to_wallet_id": b["id"], "amount": "1.00", "currency": "USD",
    } | change  # fmt: skip
    body = {k: v for k, v in body.items() if v is not None}
    r = await api.post("/v1/transfers", body, idem=new_key())
    assert r.status_code == 400, (case, r.text)
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert error["param"] == param
    assert error["message"]
    assert error["request_id"] == r.headers["x-request-id"]
    assert await _ledger_state(api, a["id"], b["id"]) == before


async def test_same_wallet_on_both_sides_is_400(api: Api) -> None:
    _, a = await api.funded_wallet("5.00")
    r = await api.transfer(a["id"], a["id"], "1.00")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "validation_error"


async def test_invalid_json_is_400(api: Api) -> None:
    r = await api.http.post(
        "/v1/deposits",
        content=b"{not json",
        headers=api.auth() | {"Idempotency-Key": new_key(), "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "validation_error"
    assert r.json()["error"]["param"] is None


async def test_missing_idempotency_key(api: Api) -> None:
    _, a = await api.funded_wallet("5.00")
    for path, body in (
        ("/v1/deposits", {"wallet_id": a["id"], "amount": "1.00", "currency": "USD"}),
        ("/v1/withdrawals", {"wallet_id": a["id"], "amount": "1.00", "currency": "USD"}),
    ):
        r = await api.post(path, body)
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "idempotency_key_required"
        r = await api.post(path, body, idem="k" * 256)
        assert r.json()["error"]["code"] == "idempotency_key_required"
    assert await api.balance(a["id"]) == "5.00"


async def test_authentication_and_authorization(api: Api) -> None:
    alice, a = await api.funded_wallet("10.00")
    bob, b = await api.funded_wallet(amount="")
    r = await api.http.get(f"/v1/wallets/{a['id']}")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"
    r = await api.get(f"/v1/wallets/{a['id']}", key="sp_not-a-real-key")
    assert r.status_code == 401
    # debiting someone else's wallet
    r = await api.transfer(a["id"], b["id"], "1.00", key=bob["api_key"])
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    r = await api.post(
        "/v1/withdrawals",
        {"wallet_id": a["id"], "amount": "1.00", "currency": "USD"},
        key=bob["api_key"],
        idem=new_key(),
    )
    assert r.status_code == 403
    # only the admin deposits or creates users
    r = await api.post(
        "/v1/deposits",
        {"wallet_id": a["id"], "amount": "1.00", "currency": "USD"},
        key=alice["api_key"],
        idem=new_key(),
    )
    assert r.status_code == 403
    r = await api.post("/v1/users", {"name": "x", "email": "x@example.com"}, key=alice["api_key"])
    assert r.status_code == 403
    # others' wallets are invisible
    assert (await api.get(f"/v1/wallets/{a['id']}", key=bob["api_key"])).status_code == 404
    assert await api.balance(a["id"]) == "10.00"


async def test_insufficient_funds_is_recorded_as_failed(api: Api) -> None:
    alice, a = await api.funded_wallet("10.00")
    _, b = await api.funded_wallet(amount="")
    r = await api.transfer(a["id"], b["id"], "10.01", key=alice["api_key"])
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "insufficient_funds"
    failed = (await api.get(f"/v1/transfers/{error['transfer_id']}")).json()
    assert failed["status"] == "failed"
    assert failed["failure_code"] == "insufficient_funds"
    assert failed["completed_at"] is None
    assert await api.balance(a["id"]) == "10.00"
    assert await api.balance(b["id"]) == "0.00"


async def test_currency_mismatch_is_recorded_as_failed(api: Api) -> None:
    _, usd = await api.funded_wallet("10.00", "USD")
    _, eur = await api.funded_wallet("", "EUR")
    r = await api.transfer(usd["id"], eur["id"], "1.00", "USD")
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "currency_mismatch"
    assert (await api.get(f"/v1/transfers/{error['transfer_id']}")).json()["status"] == "failed"
    assert await api.balance(usd["id"]) == "10.00"


async def test_missing_wallet_is_404_and_recorded(api: Api) -> None:
    _, a = await api.funded_wallet("10.00")
    missing = str(uuid.uuid4())
    r = await api.transfer(a["id"], missing, "1.00")
    assert r.status_code == 404
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("not_found", "to_wallet_id")
    failed = (await api.get(f"/v1/transfers/{error['transfer_id']}")).json()
    assert failed["failure_code"] == "wallet_not_found"
    assert await api.balance(a["id"]) == "10.00"


async def test_unknown_route_uses_error_shape(api: Api) -> None:
    r = await api.get("/v1/nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


async def test_currency_never_opened_is_a_mismatch_not_a_missing_wallet(api: Api) -> None:
    """No wallet was ever opened in ISK, so it has no system account: still 422 mismatch."""
    _, usd = await api.funded_wallet("5.00")
    for path in ("/v1/withdrawals", "/v1/deposits"):
        r = await api.post(
            path, {"wallet_id": usd["id"], "amount": "1", "currency": "ISK"}, idem=new_key()
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "currency_mismatch"
    assert await api.balance(usd["id"]) == "5.00"


async def test_entries_cursor_out_of_range_is_400(api: Api) -> None:
    _, wallet = await api.funded_wallet("1.00")
    for cursor in ("9" * 19, "99999999999999999999", "-1", "abc", "\u0661"):
        r = await api.get(f"/v1/wallets/{wallet['id']}/entries", starting_after=cursor)
        assert r.status_code == 400, (cursor, r.text)
        assert r.json()["error"]["param"] == "starting_after"


async def test_initiator_reads_its_failed_transfer_to_a_missing_wallet(api: Api) -> None:
    user, _ = await api.funded_wallet("1.00")
    r = await api.post(
        "/v1/withdrawals",
        {"wallet_id": str(uuid.uuid4()), "amount": "1.00", "currency": "USD"},
        key=user["api_key"],
        idem=new_key(),
    )
    assert r.status_code == 404
    transfer_id = r.json()["error"]["transfer_id"]
    r = await api.get(f"/v1/transfers/{transfer_id}", key=user["api_key"])
    assert r.status_code == 200
    assert r.json()["failure_code"] == "wallet_not_found"
    stranger = await api.user()
    assert (
        await api.get(f"/v1/transfers/{transfer_id}", key=stranger["api_key"])
    ).status_code == 404
