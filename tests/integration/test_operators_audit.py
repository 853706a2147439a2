"""Operator identities and the audit trail (issue 14, findings 7 and 10): named admin keys
created, used, rotated and revoked; user keys rotated by their user and revoked by an admin;
every admin action written to an append-only table with who, what, when, from where."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from typing import Any

import asyncpg
import pytest

from steadypay import bootstrap
from tests.api_client import Api


async def audit(api: Api, **params: Any) -> list[dict[str, Any]]:
    r = await api.get("/v1/admin/audit", **params)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


async def new_operator(api: Api, name: str | None = None) -> dict[str, Any]:
    r = await api.post("/v1/admin/keys", {"name": name or f"op{secrets.token_hex(4)}@ops"})
    assert r.status_code == 201, r.text
    assert r.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = r.json()
    return body


async def test_a_named_admin_key_acts_under_its_own_identity(api: Api) -> None:
    alice = await new_operator(api, f"alice{secrets.token_hex(3)}@ops")
    assert alice["key"].startswith("sp_op_")
    assert alice["id"].startswith("ak_")
    assert alice["actor"] == f"admin:{alice['id']}"
    assert alice["created_by"] == "admin:env"

    # Alice holds a transfer's fate: deposit, a big transfer held for review, her approval.
    _, payer = await api.funded_wallet("20000.00")
    _, payee = await api.funded_wallet("")
    held = await api.transfer(payer["id"], payee["id"], "11000.00")  # over the fallback limit
    assert held.status_code == 201, held.text
    transfer = held.json()
    assert transfer["status"] == "pending_review", transfer
    approved = await api.post(f"/v1/transfers/{transfer['id']}/approve", {}, key=alice["key"])
    assert approved.status_code == 200, approved.text

    mine = await audit(api, actor=alice["actor"])
    assert [e["action"] for e in mine] == ["hold.approve"]
    entry = mine[0]
    assert entry["target"] == f"transfer:{transfer['id']}"
    assert entry["source"] == "127.0.0.1"
    assert entry["request_id"] == approved.headers["X-Request-Id"]
    assert entry["details"]["outcome"] == "completed"
    created = [
        e for e in await audit(api, actor="admin:env", limit=200) if e["target"] == alice["id"]
    ]
    assert [e["action"] for e in created] == ["admin_key.create"]

    # an approval of an already approved hold changes nothing and records nothing new
    again = await api.post(f"/v1/transfers/{transfer['id']}/approve", {}, key=alice["key"])
    assert again.status_code == 200
    assert len(await audit(api, actor=alice["actor"])) == 1


async def test_rotation_and_revocation_of_admin_keys(api: Api) -> None:
    bob = await new_operator(api)
    assert (await api.get("/v1/reviews", key=bob["key"])).status_code == 200

    rotated = await api.post(f"/v1/admin/keys/{bob['id']}/rotate", {}, key=bob["key"])
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["Cache-Control"] == "no-store"
    new_secret = rotated.json()["key"]
    assert rotated.json()["id"] == bob["id"]
    assert rotated.json()["rotated_at"]
    assert (await api.get("/v1/reviews", key=bob["key"])).status_code == 401
    assert (await api.get("/v1/reviews", key=new_secret)).status_code == 200

    listed = await api.get("/v1/admin/keys")
    assert bob["id"] in {k["id"] for k in listed.json()["data"]}
    assert all("key" not in k and "key_hash" not in k for k in listed.json()["data"])

    revoked = await api.http.delete(f"/v1/admin/keys/{bob['id']}", headers=api.auth())
    assert revoked.status_code == 200
    assert revoked.json()["revoked_by"] == "admin:env"
    assert (await api.get("/v1/reviews", key=new_secret)).status_code == 401
    again = await api.http.delete(f"/v1/admin/keys/{bob['id']}", headers=api.auth())
    assert again.status_code == 200  # idempotent
    assert bob["id"] not in {k["id"] for k in (await api.get("/v1/admin/keys")).json()["data"]}
    with_revoked = await api.get("/v1/admin/keys", include_revoked="true")
    assert bob["id"] in {k["id"] for k in with_revoked.json()["data"]}

    actions = [e["action"] for e in await audit(api, limit=200) if e["target"] == bob["id"]]
    assert actions == ["admin_key.revoke", "admin_key.rotate", "admin_key.create"]  # newest first

    # the name is free again once its key is revoked; a live duplicate is refused
    name = bob["name"]
    assert (await api.post("/v1/admin/keys", {"name": name})).status_code == 201
    dup = await api.post("/v1/admin/keys", {"name": name})
    assert dup.status_code == 409
    bad = await api.post("/v1/admin/keys", {"name": "Bob Smith"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "validation_error"
    missing = await api.post("/v1/admin/keys/ak_000000000000/rotate", {})
    assert missing.status_code == 404


async def test_users_cannot_manage_keys_or_read_the_audit(api: Api) -> None:
    user = await api.user()
    for r in (
        await api.post("/v1/admin/keys", {"name": "mallory"}, key=user["api_key"]),
        await api.get("/v1/admin/keys", key=user["api_key"]),
        await api.get("/v1/admin/audit", key=user["api_key"]),
    ):
        assert r.status_code == 403, r.text


async def test_a_user_rotates_its_own_key_and_an_admin_revokes_it(api: Api) -> None:
    user, other = await api.user(), await api.user()
    created = await api.post(
        "/v1/users", {"name": "N", "email": f"n{secrets.token_hex(4)}@example.com"}
    )
    assert created.headers["Cache-Control"] == "no-store"

    rotated = await api.post(f"/v1/users/{user['id']}/api_key", {}, key=user["api_key"])
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["Cache-Control"] == "no-store"
    fresh = rotated.json()["api_key"]
    assert (await api.get("/v1/transfers", key=user["api_key"])).status_code == 401
    assert (await api.get("/v1/transfers", key=fresh)).status_code == 200

    # another user can neither rotate it nor learn that the user exists
    theirs = await api.post(f"/v1/users/{user['id']}/api_key", {}, key=other["api_key"])
    assert theirs.status_code == 404
    assert (await api.get("/v1/transfers", key=fresh)).status_code == 200

    revoked = await api.http.delete(f"/v1/users/{user['id']}/api_key", headers=api.auth())
    assert revoked.status_code == 204
    assert (await api.get("/v1/transfers", key=fresh)).status_code == 401
    refused = await api.http.delete(
        f"/v1/users/{other['id']}/api_key", headers=api.auth(other["api_key"])
    )
    assert refused.status_code == 403
    reissued = await api.post(f"/v1/users/{user['id']}/api_key", {})
    assert (await api.get("/v1/transfers", key=reissued.json()["api_key"])).status_code == 200

    trail = [e for e in await audit(api, limit=200) if e["target"] == f"user:{user['id']}"]
    assert [(e["action"], e["actor"]) for e in trail] == [
        ("user_key.rotate", "admin:env"),
        ("user_key.revoke", "admin:env"),
        ("user_key.rotate", f"user:{user['id']}"),
    ]


async def test_outbox_redelivery_and_chaos_are_audited(
    api: Api, container: bootstrap.Container
) -> None:
    r = await api.http.put("/v1/admin/chaos", json={"enabled": False}, headers=api.auth())
    assert r.status_code == 200, r.text
    entry = (await audit(api, limit=1))[0]
    assert (entry["action"], entry["actor"], entry["details"]["enabled"]) == (
        "chaos.set",
        "admin:env",
        False,
    )

    async with container.db.writer().connection() as conn:
        event_id = await conn.fetchval(
            "SELECT id FROM outbox_events WHERE status = 'pending' LIMIT 1"
        )
    if event_id is None:
        _, _wallet = await api.funded_wallet("1.00")  # a deposit puts an event in the outbox
        async with container.db.writer().connection() as conn:
            event_id = await conn.fetchval(
                "SELECT id FROM outbox_events WHERE status = 'pending' LIMIT 1"
            )
    redelivered = await api.post(f"/v1/admin/outbox/{event_id}/redeliver", {})
    assert redelivered.status_code == 200, redelivered.text
    entry = (await audit(api, limit=1))[0]
    assert (entry["action"], entry["target"]) == ("outbox.redeliver", f"event:{event_id}")


async def test_the_audit_log_is_append_only(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO audit_log (actor, action) VALUES ('test', 'test.append')")
        for statement in (
            "UPDATE audit_log SET actor = 'someone else'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(asyncpg.exceptions.RestrictViolationError, match="append-only"):
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_audit_pages_newest_first(api: Api) -> None:
    for _ in range(3):
        await new_operator(api)
    first = await api.get("/v1/admin/audit", limit=2)
    assert first.json()["has_more"] is True
    ids = [e["id"] for e in first.json()["data"]]
    assert ids == sorted(ids, reverse=True)
    second = await api.get("/v1/admin/audit", limit=2, starting_after=ids[-1])
    assert all(e["id"] < ids[-1] for e in second.json()["data"])
    bad = await api.get("/v1/admin/audit", actor="drop table")
    assert bad.status_code == 400


def steadypay_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"STEADYPAY_DATABASE_URL": database_url, "STEADYPAY_ENV": "test"}
    return subprocess.run(
        [sys.executable, "-m", "steadypay", "admin-keys", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


async def test_the_cli_manages_operator_keys(api: Api, database_url: str) -> None:
    name = f"carol{secrets.token_hex(3)}@ops"
    created = await asyncio.to_thread(
        steadypay_cli, database_url, "create", "--name", name, "--json"
    )
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert (await api.get("/v1/reviews", key=key["key"])).status_code == 200

    listed = await asyncio.to_thread(steadypay_cli, database_url, "list", "--json")
    assert name in {k["name"] for k in json.loads(listed.stdout)}
    assert key["key"] not in listed.stdout

    refused = await asyncio.to_thread(steadypay_cli, database_url, "revoke", key["id"])
    assert refused.returncode == 1  # no confirmation without a terminal, nothing revoked
    assert (await api.get("/v1/reviews", key=key["key"])).status_code == 200
    revoked = await asyncio.to_thread(steadypay_cli, database_url, "revoke", key["id"], "--yes")
    assert revoked.returncode == 0, revoked.stderr
    assert (await api.get("/v1/reviews", key=key["key"])).status_code == 401

    trail = [e for e in await audit(api, limit=200) if e["target"] == key["id"]]
    assert [e["action"] for e in trail] == ["admin_key.revoke", "admin_key.create"]
    assert all(e["actor"].startswith("cli:") and e["source"] == "local" for e in trail)

    bad = await asyncio.to_thread(steadypay_cli, database_url, "rotate", "ak_000000000000")
    assert bad.returncode == 1
    assert "not_found" in bad.stderr
