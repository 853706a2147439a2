"""The HTTP contract, over real HTTP on loopback, against real PostgreSQL."""

from __future__ import annotations

import uuid

from tests.api_client import Api, new_key


async def test_user_wallet_deposit_transfer_entries(api: Api) -> None:
    alice = await api.user("Alice")
    assert set(alice) == {"id", "name", "email", "api_key", "created_at"}
    bob = await api.user("Bob")
    a = await api.wallet(alice["id"])
    b = await api.wallet(bob["id"])
    assert a["balance"] == "0.00"
    assert a["available_balance"] == "0.00"

    deposit = await api.deposit(a["id"], "100.00")
    assert deposit["type"] == "deposit"
    assert deposit["status"] == "completed"
    assert deposit["to_wallet_id"] == a["id"]
    assert deposit["from_wallet_id"] is None

    r = await api.transfer(a["id"], b["id"], "42.50", key=alice["api_key"])
    assert r.status_code == 201, r.text
    t = r.json()
    assert set(t) == {
        "id", "type", "status", "from_wallet_id", "to_wallet_id", "amount", "currency",
        "description", "failure_code", "risk", "hold_expires_at", "created_at", "completed_at",
    }  # fmt: skip
    assert t["risk"]["source"] == "fallback"  # the session runs with the fraud service down
    assert (t["type"], t["status"], t["amount"], t["failure_code"]) == (
        "transfer", "completed", "42.50", None,
    )  # fmt: skip
    assert await api.balance(a["id"]) == "57.50"
    assert await api.balance(b["id"]) == "42.50"

    # the owner sees the wallet; entries newest first, signed, chained
    r = await api.get(f"/v1/wallets/{a['id']}/entries", key=alice["api_key"])
    assert r.status_code == 200
    page = r.json()
    assert page["has_more"] is False
    assert [e["amount"] for e in page["data"]] == ["-42.50", "100.00"]
    newest, oldest = page["data"]
    assert (oldest["balance_before"], oldest["balance_after"]) == ("0.00", "100.00")
    assert (newest["balance_before"], newest["balance_after"]) == ("100.00", "57.50")
    assert newest["transfer_id"] == t["id"]

    # both parties can read the transfer; a stranger cannot
    for key in (alice["api_key"], bob["api_key"], None):
        assert (await api.get(f"/v1/transfers/{t['id']}", key=key)).json()["id"] == t["id"]
    stranger = await api.user()
    r = await api.get(f"/v1/transfers/{t['id']}", key=stranger["api_key"])
    assert r.status_code == 404


async def test_entries_pagination(api: Api) -> None:
    _, wallet = await api.funded_wallet("1.00")
    for _ in range(4):
        await api.deposit(wallet["id"], "1.00")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"starting_after": cursor} if cursor else {})
        page = (await api.get(f"/v1/wallets/{wallet['id']}/entries", **params)).json()
        seen += [e["id"] for e in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    assert len(seen) == 5
    assert seen == sorted(seen, key=int, reverse=True)


async def test_transfer_listing_by_wallet_and_for_user(api: Api) -> None:
    user, wallet = await api.funded_wallet("10.00")
    other_user, other = await api.funded_wallet(amount="")
    r = await api.transfer(wallet["id"], other["id"], "1.00", key=user["api_key"])
    assert r.status_code == 201
    mine = (await api.get("/v1/transfers", key=user["api_key"])).json()
    assert [t["type"] for t in mine["data"]] == ["transfer", "deposit"]
    theirs = (await api.get("/v1/transfers", key=other_user["api_key"])).json()
    assert [t["type"] for t in theirs["data"]] == ["transfer"]
    by_wallet = (await api.get("/v1/transfers", wallet_id=wallet["id"], limit=1)).json()
    assert by_wallet["has_more"] is True
    assert len(by_wallet["data"]) == 1
    # someone else's wallet is not visible
    r = await api.get("/v1/transfers", key=other_user["api_key"], wallet_id=wallet["id"])
    assert r.status_code == 404


async def test_withdrawal_by_owner(api: Api) -> None:
    user, wallet = await api.funded_wallet("20.00")
    r = await api.post(
        "/v1/withdrawals",
        {"wallet_id": wallet["id"], "amount": "5.25", "currency": "USD"},
        key=user["api_key"],
        idem=new_key(),
    )
    assert r.status_code == 201, r.text
    assert r.json()["type"] == "withdrawal"
    assert r.json()["to_wallet_id"] is None
    assert await api.balance(wallet["id"]) == "14.75"


async def test_currency_exponents_round_trip(api: Api) -> None:
    for currency, amount in (("JPY", "1500"), ("KWD", "1.005"), ("CLF", "0.0001")):
        _, wallet = await api.funded_wallet(amount, currency)
        assert await api.balance(wallet["id"]) == amount


async def test_one_wallet_per_user_and_currency(api: Api) -> None:
    user = await api.user()
    await api.wallet(user["id"], "EUR")
    r = await api.post("/v1/wallets", {"user_id": user["id"], "currency": "EUR"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "wallet_exists"
    # a user may open their own wallet, not someone else's
    r = await api.post("/v1/wallets", {"user_id": user["id"], "currency": "GBP"},
                       key=user["api_key"])  # fmt: skip
    assert r.status_code == 201
    other = await api.user()
    r = await api.post("/v1/wallets", {"user_id": other["id"], "currency": "GBP"},
                       key=user["api_key"])  # fmt: skip
    assert r.status_code == 403
    r = await api.post("/v1/wallets", {"user_id": str(uuid.uuid4()), "currency": "GBP"})
    assert r.status_code == 404


async def test_health(api: Api) -> None:
    assert (await api.http.get("/health/live")).status_code == 200
    r = await api.http.get("/health/ready")
    assert r.status_code == 200
    assert r.json()["checks"]["postgresql:responseTime"][0]["status"] == "pass"


async def test_openapi_documents_the_contract(api: Api) -> None:
    spec = (await api.http.get("/openapi.json")).json()
    paths = set(spec["paths"])
    assert {
        "/v1/users", "/v1/wallets", "/v1/wallets/{wallet_id}", "/v1/wallets/{wallet_id}/entries",
        "/v1/deposits", "/v1/withdrawals", "/v1/transfers", "/v1/transfers/{transfer_id}",
        "/health/live", "/health/ready",
    } <= paths  # fmt: skip
    assert (await api.http.get("/docs")).status_code == 200
    # the document tells the truth: 400 with our error body, bearer auth, no FastAPI 422
    assert "HTTPValidationError" not in str(spec)
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    create_wallet = spec["paths"]["/v1/wallets"]["post"]
    assert {"201", "400", "401", "409"} <= set(create_wallet["responses"])
    assert "422" in spec["paths"]["/v1/transfers"]["post"]["responses"]
