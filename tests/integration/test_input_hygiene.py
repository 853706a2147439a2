"""Input hygiene at the edge (issue 14, findings 3, 4, 5 and 10), over real HTTP on real
PostgreSQL: control characters, invisible names, duplicate JSON keys, body size and nesting
depth are refused with our error body, and nothing is created or moved."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from steadypay.bootstrap.fraud import create_fraud_app
from steadypay.bootstrap.notifications import create_notification_app
from steadypay.config import InputLimitSettings, Settings
from tests.api_client import Api, new_key
from tests.integration.conftest import serve

LIMITS = InputLimitSettings()
MAX_BODY = LIMITS.http_max_body_bytes
MAX_BATCH_BODY = LIMITS.http_max_batch_body_bytes


def _email() -> str:
    return f"u{secrets.token_hex(6)}@example.com"


async def _ledger_state(api: Api, *wallet_ids: str) -> list[tuple[str, int]]:
    state = []
    for wallet_id in wallet_ids:
        balance = await api.balance(wallet_id)
        entries = (await api.get(f"/v1/wallets/{wallet_id}/entries", limit=100)).json()["data"]
        state.append((balance, len(entries)))
    return state


async def _post_json(api: Api, path: str, body: Any, *, idem: bool = True) -> Any:
    """``body`` as ASCII JSON (``\\u`` escapes: httpx's ``json=`` cannot send a lone
    surrogate)."""
    return await _post_raw(api, path, json.dumps(body).encode(), idem=idem)


async def _post_raw(api: Api, path: str, body: bytes, *, idem: bool = True) -> Any:
    headers = api.auth() | {"Content-Type": "application/json"}
    if idem:
        headers["Idempotency-Key"] = new_key()
    return await api.http.post(path, content=body, headers=headers)


def _assert_validation_error(response: Any, param: str | None) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "validation_error", error
    assert error["param"] == param, error
    assert error["request_id"] == response.headers["x-request-id"]
    return error


# --- finding 3: control characters and invisible names -----------------------------------

CONTROL = [
    pytest.param("\x00", id="NUL"),
    pytest.param("\x01", id="SOH"),
    pytest.param("\t", id="tab"),
    pytest.param("\n", id="newline"),
    pytest.param("\x1b", id="ESC"),
    pytest.param("\x7f", id="DEL"),
    pytest.param("\x85", id="C1-NEL"),
    pytest.param("\x9b", id="C1-CSI"),
    pytest.param("\u2028", id="line-separator"),
    pytest.param("\u202e", id="bidi-override"),
    pytest.param("\ud800", id="lone-surrogate"),
]


@pytest.mark.parametrize("char", CONTROL)
async def test_a_control_character_in_a_name_is_400_and_creates_nobody(api: Api, char: str) -> None:
    email = _email()
    r = await _post_json(api, "/v1/users", {"name": f"Ada{char}Lovelace", "email": email})
    _assert_validation_error(r, "name")
    # nobody was created: the same email is still free
    ok = await api.post("/v1/users", {"name": "Ada Lovelace", "email": email})
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x85", "\ud800"])
async def test_a_control_character_in_an_email_is_400(api: Api, char: str) -> None:
    body = {"name": "Ada", "email": f"ada{char}@example.com"}
    r = await _post_json(api, "/v1/users", body, idem=False)
    _assert_validation_error(r, "email")


@pytest.mark.parametrize("char", CONTROL)
async def test_a_control_character_in_a_description_is_400_and_moves_nothing(
    api: Api, char: str
) -> None:
    _, a = await api.funded_wallet("50.00")
    _, b = await api.funded_wallet(amount="")
    before = await _ledger_state(api, a["id"], b["id"])
    body = {
        "from_wallet_id": a["id"], "to_wallet_id": b["id"], "amount": "1.00", "currency": "USD",
        "description": f"rent{char}march",
    }  # fmt: skip
    r = await _post_json(api, "/v1/transfers", body)
    _assert_validation_error(r, "description")
    assert await _ledger_state(api, a["id"], b["id"]) == before


async def test_nul_in_a_batch_item_names_the_item(api: Api) -> None:
    _, a = await api.funded_wallet("5.00")
    _, b = await api.funded_wallet(amount="")
    item = {"from_wallet_id": a["id"], "to_wallet_id": b["id"], "amount": "1.00",
            "currency": "USD"}  # fmt: skip
    body = {"transfers": [item, item | {"description": "x\x00y"}]}
    r = await api.post("/v1/transfers/batch", body, idem=new_key())
    _assert_validation_error(r, "transfers.1.description")
    assert await api.balance(a["id"]) == "5.00"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("\u200b", id="zero-width-space"),
        pytest.param("\u200b\u200b\u200b", id="zero-width-spaces"),
        pytest.param(" \u200b ", id="spaces-and-zero-width"),
        pytest.param("   ", id="spaces"),
        pytest.param("\u00a0\u3000", id="no-break-and-ideographic-spaces"),
        pytest.param("\u2060\ufeff\u200d", id="word-joiner-bom-zwj"),
        pytest.param("\u3164", id="hangul-filler"),
        pytest.param("\u0301", id="lone-combining-mark"),
    ],
)
async def test_a_name_with_nothing_visible_is_400(api: Api, name: str) -> None:
    r = await _post_json(api, "/v1/users", {"name": name, "email": _email()}, idem=False)
    _assert_validation_error(r, "name")


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("  Ada Lovelace  ", "Ada Lovelace"),
        ("\u200bAda\u200b", "Ada"),  # invisible characters around a name are removed
        ("Ali\u200cReza", "Ali\u200cReza"),  # a joiner inside a name is kept
        ("\U0001f469\u200d\U0001f4bb Dev", "\U0001f469\u200d\U0001f4bb Dev"),
        ("Zoë Ñandú 李小龍", "Zoë Ñandú 李小龍"),
    ],
)
async def test_names_are_trimmed_and_any_script_is_accepted(
    api: Api, sent: str, stored: str
) -> None:
    r = await api.post("/v1/users", {"name": sent, "email": _email()})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == stored


# --- finding 4: duplicate JSON keys ---------------------------------------------------------


async def test_a_duplicate_key_is_400_and_moves_nothing(api: Api) -> None:
    _, a = await api.funded_wallet("1000.00")
    _, b = await api.funded_wallet(amount="")
    before = await _ledger_state(api, a["id"], b["id"])
    body = (
        f'{{"from_wallet_id":"{a["id"]}","to_wallet_id":"{b["id"]}","currency":"USD",'
        f'"amount":"0.01","amount":"999.00"}}'
    ).encode()
    r = await _post_raw(api, "/v1/transfers", body)
    error = _assert_validation_error(r, "amount")
    assert "duplicate" in error["message"]
    assert "'amount'" in error["message"]
    assert await _ledger_state(api, a["id"], b["id"]) == before


async def test_a_duplicate_key_deep_in_a_batch_is_400_and_names_its_place(api: Api) -> None:
    _, a = await api.funded_wallet("1000.00")
    _, b = await api.funded_wallet(amount="")
    item = f'{{"from_wallet_id":"{a["id"]}","to_wallet_id":"{b["id"]}","currency":"USD"'
    body = (
        f'{{"transfers":[{item},"amount":"1.00"}},{item},"amount":"0.01","amount":"999.00"}}]}}'
    ).encode()
    r = await _post_raw(api, "/v1/transfers/batch", body)
    error = _assert_validation_error(r, "transfers.1.amount")
    assert "'amount'" in error["message"]
    assert await api.balance(a["id"]) == "1000.00"


async def test_a_duplicate_key_on_a_user_is_400(api: Api) -> None:
    email = _email()
    body = f'{{"name":"Ada","email":"{email}","name":"Eve"}}'.encode()
    r = await _post_raw(api, "/v1/users", body, idem=False)
    _assert_validation_error(r, "name")
    ok = await api.post("/v1/users", {"name": "Ada", "email": email})
    assert ok.status_code == 201, ok.text


# --- finding 5: body size and nesting depth -------------------------------------------------


async def _raw_exchange(base_url: str, head: str, parts: list[bytes]) -> tuple[int, bytes]:
    """Send the request head and ``parts`` (no more), then read the answer: a 413 must come
    although the body was never sent in full."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(head.encode("latin-1"))
        for part in parts:
            writer.write(part)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        length = 0
        while (line := await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        body = await asyncio.wait_for(reader.readexactly(length), 10)
        return int(status_line.split()[1]), body
    finally:
        writer.close()


def _head(api: Api, path: str, framing: str) -> str:
    auth = api.auth()["Authorization"]
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
        f"Idempotency-Key: {new_key()}\r\nContent-Type: application/json\r\n{framing}\r\n"
    )


def _assert_too_large(status: int, body: bytes, limit: int) -> None:
    assert status == 413, body
    error = json.loads(body)["error"]
    assert error["code"] == "payload_too_large"
    assert error["max_body_bytes"] == limit
    assert error["request_id"].startswith("req_")


async def test_a_12_mb_body_is_413_from_its_content_length_before_it_is_sent(
    api: Api, base_url: str
) -> None:
    head = _head(api, "/v1/transfers", "Content-Length: 12000000\r\n")
    status, body = await _raw_exchange(base_url, head, [b'{"amount":"'])
    _assert_too_large(status, body, MAX_BODY)


async def test_a_chunked_body_is_413_as_soon_as_it_crosses_the_limit(
    api: Api, base_url: str
) -> None:
    """Chunked, without Content-Length: the server stops reading when the limit is crossed
    (the client has sent only a little more than the limit of its 12 MB)."""
    chunk = b" " * 65_536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    parts = [b'5\r\n{"a":\r\n'] + [frame] * (MAX_BODY // len(chunk) + 1)
    head = _head(api, "/v1/transfers", "Transfer-Encoding: chunked\r\n")
    status, body = await _raw_exchange(base_url, head, parts)
    _assert_too_large(status, body, MAX_BODY)


async def test_the_batch_endpoint_accepts_bodies_up_to_its_larger_limit(
    api: Api, base_url: str
) -> None:
    _, a = await api.funded_wallet("5.00")
    _, b = await api.funded_wallet(amount="")
    item = {"from_wallet_id": a["id"], "to_wallet_id": b["id"], "amount": "1.00",
            "currency": "USD"}  # fmt: skip
    padding = b" " * (2 * MAX_BODY)  # insignificant whitespace: a valid, large body
    body = json.dumps({"transfers": [item], "atomic": True}).encode() + padding
    assert MAX_BODY < len(body) < MAX_BATCH_BODY
    r = await _post_raw(api, "/v1/transfers/batch", body)
    assert r.status_code == 200, r.text
    assert await api.balance(b["id"]) == "1.00"

    single = json.dumps(item).encode() + padding  # the same size is too large elsewhere
    r = await _post_raw(api, "/v1/transfers", single)
    assert r.status_code == 413, r.text
    assert await api.balance(b["id"]) == "1.00"

    head = _head(api, "/v1/transfers/batch", f"Content-Length: {MAX_BATCH_BODY + 1}\r\n")
    status, answer = await _raw_exchange(base_url, head, [])
    _assert_too_large(status, answer, MAX_BATCH_BODY)


@pytest.mark.parametrize("depth", [LIMITS.http_max_json_depth + 1, 10_000])
async def test_deeply_nested_json_is_400_validation_error(api: Api, depth: int) -> None:
    nested = "[" * (depth - 1) + "]" * (depth - 1)
    body = f'{{"name":{nested},"email":"{_email()}"}}'.encode()
    r = await _post_raw(api, "/v1/users", body, idem=False)
    error = _assert_validation_error(r, None)
    assert str(LIMITS.http_max_json_depth) in error["message"]


async def test_json_within_the_depth_limit_reaches_validation(api: Api) -> None:
    depth = LIMITS.http_max_json_depth
    nested = "[" * (depth - 1) + "]" * (depth - 1)
    body = f'{{"name":{nested},"email":"{_email()}"}}'.encode()
    r = await _post_raw(api, "/v1/users", body, idem=False)
    error = _assert_validation_error(r, "name")  # the model's own error: name is no string
    assert "string" in error["message"]


async def test_a_body_that_is_not_utf8_is_400_validation_error(api: Api) -> None:
    r = await _post_raw(api, "/v1/users", b'{"name":"\xff\xfe","email":"a@example.com"}')
    _assert_validation_error(r, None)


async def test_ordinary_requests_still_work(api: Api) -> None:
    _, a = await api.funded_wallet("5.00")
    _, b = await api.funded_wallet(amount="")
    r = await api.transfer(a["id"], b["id"], "2.00")
    assert r.status_code == 201, r.text
    assert await api.balance(b["id"]) == "2.00"
    assert uuid.UUID(r.json()["id"])


# --- the fraud and notification services share the stack (findings 4 and 5) ----------------


async def test_the_fraud_and_notification_services_refuse_duplicates_and_large_bodies(
    settings: Settings,
) -> None:
    """Both services, served for real on the session's database: a duplicate key is 400 and
    stores nothing (the same check then scores as new), a large body 413."""
    headers = {"Authorization": f"Bearer {settings.internal_key()}",
               "Content-Type": "application/json"}  # fmt: skip
    check = {
        "transfer_id": str(uuid.uuid4()), "sender_user_id": str(uuid.uuid4()),
        "from_wallet_id": str(uuid.uuid4()), "to_wallet_id": str(uuid.uuid4()),
        "currency": "USD", "amount": "1.00", "amount_minor": 100,
        "sender_created_at": "2020-01-01T00:00:00+00:00",
    }  # fmt: skip
    duplicated = json.dumps(check)[:-1].encode() + b', "amount_minor": 100}'
    async with serve(create_fraud_app(settings)) as url, httpx.AsyncClient(base_url=url) as http:
        r = await http.post("/check-fraud", content=duplicated, headers=headers)
        _assert_validation_error(r, "amount_minor")
        r = await http.post("/check-fraud", content=b" " * (MAX_BODY + 1), headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (413, "payload_too_large")
        r = await http.post("/check-fraud", json=check, headers=headers)
        assert r.status_code == 200, r.text
        assert "idempotent-replayed" not in r.headers  # the refused request stored nothing

    event = {"id": str(uuid.uuid4()), "type": "transfer.completed",
             "created_at": "2026-01-01T00:00:00+00:00", "user_ids": [], "data": {}}  # fmt: skip
    without_data = {k: v for k, v in event.items() if k != "data"}
    duplicated = json.dumps(without_data)[:-1].encode() + b', "data": {"a": 1, "a": 2}}'
    app = create_notification_app(settings)
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as http:
        r = await http.post("/events", content=duplicated, headers=headers)
        _assert_validation_error(r, "data.a")
        nul = json.dumps(event | {"data": {"note": "a\x00b"}}).encode()
        r = await http.post("/events", content=nul, headers=headers)
        _assert_validation_error(r, "data.note")
        r = await http.post("/events", content=b" " * (MAX_BODY + 1), headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (413, "payload_too_large")
