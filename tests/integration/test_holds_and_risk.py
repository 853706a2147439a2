"""Risk before money moves, review holds (pending -> post | void), and their outbox events.

The session's fraud service is down (see conftest): every transfer here is judged by the
in-process fallback rules.
"""

from __future__ import annotations

import uuid

from steadypay.bootstrap import Container
from tests.api_client import Api


async def _events(container: Container, transfer_id: str) -> list[str]:
    async with container.db.connection() as conn:
        rows = await conn.fetch(
            "SELECT type FROM outbox_events WHERE transfer_id = $1 ORDER BY seq",
            uuid.UUID(transfer_id),
        )
    return [r["type"] for r in rows]


async def _wallet(api: Api, wallet_id: str) -> tuple[str, str]:
    w = (await api.get(f"/v1/wallets/{wallet_id}")).json()
    return w["balance"], w["available_balance"]


async def test_large_transfer_is_held_then_approved(api: Api, container: Container) -> None:
    _, a = await api.funded_wallet("20000.00")
    _, b = await api.funded_wallet(amount="")
    r = await api.transfer(a["id"], b["id"], "11000.00")
    assert r.status_code == 201, r.text
    held = r.json()
    assert held["status"] == "pending_review"
    assert held["risk"]["source"] == "fallback"
    assert held["risk"]["score"] is None
    assert "fallback:amount_over_10000" in held["risk"]["reasons"]
    assert held["hold_expires_at"] is not None
    assert held["completed_at"] is None
    assert await _wallet(api, a["id"]) == ("20000.00", "9000.00")  # reserved, not moved
    assert await _wallet(api, b["id"]) == ("0.00", "0.00")

    queue = (await api.get("/v1/reviews", limit=100)).json()["data"]
    assert held["id"] in [t["id"] for t in queue]

    approved = await api.post(f"/v1/transfers/{held['id']}/approve", {})
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "completed"
    assert await _wallet(api, a["id"]) == ("9000.00", "9000.00")
    assert await _wallet(api, b["id"]) == ("11000.00", "11000.00")
    # approving twice is idempotent; rejecting a posted transfer is refused
    again = await api.post(f"/v1/transfers/{held['id']}/approve", {})
    assert (again.status_code, again.json()["status"]) == (200, "completed")
    refused = await api.post(f"/v1/transfers/{held['id']}/reject", {})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "hold_not_pending"
    assert await _wallet(api, b["id"]) == ("11000.00", "11000.00")
    assert await _events(container, held["id"]) == [
        "transfer.pending_review",
        "transfer.approved",
    ]
    entries = (await api.get(f"/v1/wallets/{b['id']}/entries")).json()["data"]
    assert [e["amount"] for e in entries] == ["11000.00"]


async def test_rejected_hold_releases_funds_and_can_never_be_posted(
    api: Api, container: Container
) -> None:
    _, a = await api.funded_wallet("12000.00")
    _, b = await api.funded_wallet(amount="")
    held = (await api.transfer(a["id"], b["id"], "10000.01")).json()
    assert held["status"] == "pending_review"
    # the hold is reserved: the rest of the available balance can still be spent, not more
    assert (await api.transfer(a["id"], b["id"], "1999.99")).status_code == 201
    assert (await api.transfer(a["id"], b["id"], "0.01")).status_code == 422
    rejected = await api.post(f"/v1/transfers/{held['id']}/reject", {})
    assert (rejected.status_code, rejected.json()["status"]) == (200, "rejected")
    assert await _wallet(api, a["id"]) == ("10000.01", "10000.01")
    for _ in range(2):
        r = await api.post(f"/v1/transfers/{held['id']}/approve", {})
        assert r.status_code == 409
    assert (await api.post(f"/v1/transfers/{held['id']}/reject", {})).status_code == 200
    assert await _wallet(api, b["id"]) == ("1999.99", "1999.99")
    assert await _events(container, held["id"]) == [
        "transfer.pending_review",
        "transfer.rejected",
    ]


async def test_expired_hold_is_voided_and_can_never_be_posted(
    api: Api, container: Container
) -> None:
    _, a = await api.funded_wallet("15000.00")
    _, b = await api.funded_wallet(amount="")
    held = (await api.transfer(a["id"], b["id"], "10500.00")).json()
    async with container.db.connection() as conn:
        await conn.execute(
            "UPDATE transfers SET hold_expires_at = now() - interval '1 second' WHERE id = $1",
            uuid.UUID(held["id"]),
        )
    assert await container.ledger.expire_due_holds() >= 1
    after = (await api.get(f"/v1/transfers/{held['id']}")).json()
    assert after["status"] == "expired"
    assert await _wallet(api, a["id"]) == ("15000.00", "15000.00")
    assert (await api.post(f"/v1/transfers/{held['id']}/approve", {})).status_code == 409
    assert await _events(container, held["id"]) == ["transfer.pending_review", "hold.expired"]


async def test_daily_total_from_the_ledger_triggers_review(api: Api) -> None:
    _, a = await api.funded_wallet("60000.00")
    _, b = await api.funded_wallet(amount="")
    for _ in range(5):
        r = await api.transfer(a["id"], b["id"], "9999.00")
        assert r.json()["status"] == "completed"
    r = await api.transfer(a["id"], b["id"], "100.00")  # 49,995 + 100 > 50,000
    body = r.json()
    assert body["status"] == "pending_review"
    assert "fallback:daily_total_over_50000" in body["risk"]["reasons"]
    assert "daily_total_source:ledger" in body["risk"]["reasons"]


async def test_only_admin_resolves_holds(api: Api) -> None:
    alice, a = await api.funded_wallet("20000.00")
    _, b = await api.funded_wallet(amount="")
    held = (await api.transfer(a["id"], b["id"], "10001.00", key=alice["api_key"])).json()
    r = await api.post(f"/v1/transfers/{held['id']}/approve", {}, key=alice["api_key"])
    assert r.status_code == 403
    assert (await api.get("/v1/reviews", key=alice["api_key"])).status_code == 403
    assert (await api.post(f"/v1/transfers/{uuid.uuid4()}/approve", {})).status_code == 404


async def test_every_state_change_writes_one_event(api: Api, container: Container) -> None:
    alice, a = await api.funded_wallet("10.00")
    _, b = await api.funded_wallet(amount="")
    ok = (await api.transfer(a["id"], b["id"], "1.00")).json()
    failed = (await api.transfer(a["id"], b["id"], "100.00")).json()["error"]
    assert await _events(container, ok["id"]) == ["transfer.completed"]
    assert await _events(container, failed["transfer_id"]) == ["transfer.failed"]
    async with container.db.connection() as conn:
        payload = await conn.fetchval(
            "SELECT payload FROM outbox_events WHERE transfer_id = $1", uuid.UUID(ok["id"])
        )
    import json

    event = json.loads(payload)
    assert event["type"] == "transfer.completed"
    assert event["data"]["transfer"]["amount"] == "1.00"
    assert alice["id"] in event["user_ids"]
    assert len(event["user_ids"]) == 2


async def test_only_holds_can_be_resolved(api: Api) -> None:
    _, a = await api.funded_wallet("10.00")
    _, b = await api.funded_wallet(amount="")
    plain = (await api.transfer(a["id"], b["id"], "1.00")).json()
    for action in ("approve", "reject"):
        r = await api.post(f"/v1/transfers/{plain['id']}/{action}", {})
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "hold_not_pending"


async def test_an_overdue_hold_expires_instead_of_being_approved(
    api: Api, container: Container
) -> None:
    _, a = await api.funded_wallet("12000.00")
    _, b = await api.funded_wallet(amount="")
    held = (await api.transfer(a["id"], b["id"], "11000.00")).json()
    async with container.db.connection() as conn:
        await conn.execute(
            "UPDATE transfers SET hold_expires_at = now() - interval '1 second' WHERE id = $1",
            uuid.UUID(held["id"]),
        )
    r = await api.post(f"/v1/transfers/{held['id']}/approve", {})
    assert r.status_code == 409
    assert r.json()["error"]["status"] == "expired"
    assert await _wallet(api, a["id"]) == ("12000.00", "12000.00")
    assert await _wallet(api, b["id"]) == ("0.00", "0.00")
