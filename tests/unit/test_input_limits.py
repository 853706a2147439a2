"""The shared stack's input limits (issue 14, findings 3, 4, 5 and 10): strict JSON, the body
limit middleware as every service installs it, the text field types, and the servers' headers.
No I/O: ASGI calls in memory."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticError
from starlette.types import Message, Scope

from steadypay.config import Environment, Settings
from steadypay.http.app import service_app
from steadypay.http.fields import Name, Text, check_name
from steadypay.http.limits import InputLimitMiddleware, InputLimits
from steadypay.http.strict_json import problem

DEPTH = 32

# --- strict JSON (findings 4 and 5) --------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (b'{"amount":"0.01","amount":"999.00"}', "amount", "duplicate key 'amount'"),
        (b'{"a":{"b":[1,{"c":1,"c":2}]}}', "a.b.1.c", "duplicate key 'c'"),
        (b'{"t":[{"x":1},{"y":1,"y":1}]}', "t.1.y", "duplicate key 'y'"),
        (b'{"name":"a\\u0000b"}', "name", "U+0000"),
        (b'{"data":{"list":["ok","\\u0000"]}}', "data.list.1", "U+0000"),
        (b'{"k\\u0000":1}', "k\x00", "U+0000"),
        (b'{"name":"\\ud800"}', "name", "lone surrogate U+D800"),
        (b'{"name":"\xed\xa0\x80"}', "name", "lone surrogate U+D800"),  # raw, surrogatepass
        (b'{"amount":NaN}', None, "NaN is not a JSON value"),
        (b'{"amount":-Infinity}', None, "-Infinity is not a JSON value"),
        (b"{not json", None, "not valid JSON"),
        (b'{"name":"\xff"}', None, "not valid UTF-8"),
        (b"[" * 10_000 + b"]" * 10_000, None, f"deeper than {DEPTH}"),
        (b"[" * (DEPTH + 1) + b"]" * (DEPTH + 1), None, f"deeper than {DEPTH}"),
        (b'{"a":' * (DEPTH + 1) + b"1" + b"}" * (DEPTH + 1), None, f"deeper than {DEPTH}"),
    ],
)
def test_strict_json_refuses(body: bytes, param: str | None, words: str) -> None:
    error = problem(body, DEPTH)
    assert error is not None
    assert error.code == "validation_error"
    assert error.param == param
    assert words in error.message


@pytest.mark.parametrize(
    "body",
    [
        b'{"name":"Ada","email":"a@example.com"}',
        b"[" * DEPTH + b"]" * DEPTH,
        b'{"a":' * (DEPTH - 1) + b"[]" + b"}" * (DEPTH - 1),
        b'{"s":"tab\\tnew\\nline \\ud83d\\ude00 \\u200b"}',  # free text: only NUL refused here
        '{"name":"Zoë 李"}'.encode("utf-16"),
        b'"just a string"',
        b"12",
        b'{"a":{"x":1},"b":{"x":1}}',  # the same key in two objects is no duplicate
    ],
)
def test_strict_json_accepts(body: bytes) -> None:
    assert problem(body, DEPTH) is None


# --- the middleware (finding 5) --------------------------------------------------------------


class Recorder:
    """An ASGI app that reads its whole body, as FastAPI does."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.bodies.append(b"<disconnect>")
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


class Client:
    """Feeds the body in ``chunk``-sized messages and counts how many were read."""

    def __init__(self, body: bytes, chunk: int = 65_536, disconnect_after: int | None = None):
        self.parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
        self.read = 0
        self.disconnect_after = disconnect_after
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        if self.disconnect_after is not None and self.read >= self.disconnect_after:
            return {"type": "http.disconnect"}
        self.read += 1
        more = self.read < len(self.parts)
        return {"type": "http.request", "body": self.parts[self.read - 1], "more_body": more}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def error(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.sent[1]["body"])["error"]
        return body


def http_scope(path: str = "/v1/transfers", **headers: str) -> Scope:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http", "method": "POST", "path": path, "headers": raw}


LIMITS = InputLimits(
    max_body_bytes=1000, max_batch_body_bytes=5000, batch_paths=frozenset({"/batch"})
)


async def test_a_declared_length_over_the_limit_is_413_without_reading_the_body() -> None:
    app = Recorder()
    client = Client(b"x" * 2000)
    scope = http_scope(content_length="12000000", content_type="application/json")
    await InputLimitMiddleware(app, LIMITS)(scope, client.receive, client.send)
    assert client.read == 0  # not one byte read
    assert app.bodies == []
    assert client.status == 413
    assert client.error["code"] == "payload_too_large"
    assert client.error["max_body_bytes"] == 1000
    assert (b"connection", b"close") in client.sent[0]["headers"]


async def test_a_chunked_body_is_413_as_soon_as_it_crosses_the_limit() -> None:
    app = Recorder()
    client = Client(b" " * 12_000_000, chunk=100)
    scope = http_scope(transfer_encoding="chunked", content_type="application/json")
    await InputLimitMiddleware(app, LIMITS)(scope, client.receive, client.send)
    assert client.read == 11  # 1,100 bytes of the 12 MB: the message that crossed 1,000
    assert app.bodies == []
    assert client.status == 413


async def test_batch_paths_have_the_larger_limit() -> None:
    body = b'{"transfers":[]}' + b" " * 3000
    for path, status in (("/batch", 200), ("/v1/transfers", 413)):
        app, client = Recorder(), Client(body, chunk=512)
        scope = http_scope(path, transfer_encoding="chunked")
        await InputLimitMiddleware(app, LIMITS)(scope, client.receive, client.send)
        assert client.status == status, path
    app, client = Recorder(), Client(b"")
    scope = http_scope("/batch", content_length="5001")
    await InputLimitMiddleware(app, LIMITS)(scope, client.receive, client.send)
    assert client.status == 413
    assert client.error["max_body_bytes"] == 5000


async def test_a_body_within_the_limit_reaches_the_app_unchanged() -> None:
    body = json.dumps({"name": "Ada", "pad": "x" * 900}).encode()
    app, client = Recorder(), Client(body, chunk=64)
    scope = http_scope(content_length=str(len(body)), content_type="application/json")
    await InputLimitMiddleware(app, LIMITS)(scope, client.receive, client.send)
    assert app.bodies == [body]
    assert client.status == 200


async def test_only_json_bodies_are_checked_as_json() -> None:
    body = b'{"a":1,"a":2}'
    for content_type, status in (
        ("application/json", 400),
        ("application/json; charset=utf-8", 400),
        ("application/merge-patch+json", 400),
        ("text/plain", 200),
    ):
        app, client = Recorder(), Client(body)
        scope = http_scope(content_length=str(len(body)), content_type=content_type)
        await InputLimitMiddleware(app, LIMITS)(scope, client.receive, client.send)
        assert client.status == status, content_type
    app, client = Recorder(), Client(body)  # no Content-Type at all: checked
    await InputLimitMiddleware(app, LIMITS)(
        http_scope(content_length=str(len(body))), client.receive, client.send
    )
    assert client.status == 400


async def test_a_request_without_a_body_passes_untouched() -> None:
    app, client = Recorder(), Client(b"")
    scope = http_scope() | {"method": "GET"}
    await InputLimitMiddleware(app, LIMITS)(scope, client.receive, client.send)
    assert client.read == 1  # by the app, not the middleware
    assert client.status == 200


async def test_a_client_leaving_mid_body_is_passed_to_the_app() -> None:
    app, client = Recorder(), Client(b"x" * 500, chunk=100, disconnect_after=2)
    scope = http_scope(transfer_encoding="chunked")
    await InputLimitMiddleware(app, LIMITS)(scope, client.receive, client.send)
    assert app.bodies == [b"<disconnect>"]


# --- every service's stack (findings 4 and 5 on the API, fraud and notifications) ------------


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: str
    note: Annotated[str, Text(max_length=50)] | None = None


@contextlib.asynccontextmanager
async def _nothing(_: FastAPI) -> AsyncIterator[None]:
    yield


@pytest.fixture
async def shared_stack() -> AsyncIterator[httpx.AsyncClient]:
    app = service_app(
        title="t", description="d", service="test", lifespan=_nothing, health_routes=False
    )

    @app.post("/items")
    async def create(item: Item) -> dict[str, Any]:
        return item.model_dump()

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_the_shared_stack_refuses_duplicates_depth_and_size(
    shared_stack: httpx.AsyncClient,
) -> None:
    json_type = {"Content-Type": "application/json"}
    ok = await shared_stack.post("/items", json={"amount": "1.00"})
    assert ok.status_code == 200, ok.text
    r = await shared_stack.post("/items", content=b'{"amount":"1","amount":"2"}', headers=json_type)
    assert r.status_code == 400
    assert r.json()["error"] | {"request_id": None} == {
        "code": "validation_error",
        "message": "duplicate key 'amount' in a JSON object",
        "param": "amount",
        "request_id": None,
    }
    deep = b'{"amount":' + b"[" * 5000 + b"]" * 5000 + b"}"
    r = await shared_stack.post("/items", content=deep, headers=json_type)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "validation_error")
    big = b'{"amount":"' + b"1" * (2 * 1024 * 1024) + b'"}'
    r = await shared_stack.post("/items", content=big, headers=json_type)
    assert (r.status_code, r.json()["error"]["code"]) == (413, "payload_too_large")
    assert r.headers["x-request-id"] == r.json()["error"]["request_id"]
    r = await shared_stack.post("/items", json={"amount": "1", "note": "a\u0085b"})
    assert (r.status_code, r.json()["error"]["param"]) == (400, "note")


def _settings(**overrides: Any) -> Settings:
    return Settings(
        env=Environment.TEST,
        database_url="postgresql://steadypay@127.0.0.1:1/steadypay",
        admin_key="k" * 40,
        **overrides,
    )


def _limits_of(app: FastAPI) -> InputLimits:
    [found] = [m for m in app.user_middleware if m.cls is InputLimitMiddleware]
    limits: InputLimits = found.kwargs["limits"]
    return limits


def test_every_service_enforces_the_configured_limits() -> None:
    from steadypay.bootstrap.api import create_app
    from steadypay.bootstrap.fraud import create_fraud_app
    from steadypay.bootstrap.notifications import create_notification_app

    settings = _settings(
        http_max_body_bytes=4096, http_max_batch_body_bytes=65536, http_max_json_depth=8
    )
    for build in (create_app, create_fraud_app, create_notification_app):
        limits = _limits_of(build(settings))
        assert (limits.max_body_bytes, limits.max_json_depth) == (4096, 8), build
        assert limits.max_batch_body_bytes == 65536
    api = _limits_of(create_app(settings))
    assert api.body_limit("/v1/transfers/batch") == 65536
    assert api.body_limit("/v1/transfers") == 4096


# --- text fields (finding 3, and 10's zero-width name) ---------------------------------------


class Person(BaseModel):
    name: Annotated[str, Name(max_length=20)]
    note: Annotated[str, Text(max_length=20)] | None = None


@pytest.mark.parametrize(
    "value",
    ["a\x00", "a\tb", "\x7f", "\x80", "\x9f", "a\u2028", "\u2066x", "\udfff", "x\r"],
)
def test_text_refuses_control_characters(value: str) -> None:
    with pytest.raises(PydanticError, match=r"control characters|lone surrogate|unicode"):
        Person(name="Ada", note=value)
    with pytest.raises(PydanticError, match=r"control characters|lone surrogate|unicode"):
        Person(name=value)


@pytest.mark.parametrize(
    "value", ["\u200b", "\u2060\u200c", "\u00a0 \u3000", "\u3164\u115f", "\u0301", ""]
)
def test_a_name_needs_a_visible_character(value: str) -> None:
    with pytest.raises(PydanticError):
        Person(name=value)


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (" Ada ", "Ada"),
        ("\ufeffAda\u200b", "Ada"),
        ("Jose\u0301", "Jose\u0301"),  # a trailing combining mark is part of the name
        ("Ali\u200cReza", "Ali\u200cReza"),
        (
            "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
            "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
        ),
    ],
)
def test_names_are_trimmed_of_invisible_ends_only(value: str, kept: str) -> None:
    assert check_name(value) == kept
    assert Person(name=value).name == kept


def test_text_is_strict_and_bounded() -> None:
    with pytest.raises(PydanticError, match="valid string"):
        Person(name=12)  # type: ignore[arg-type]
    with pytest.raises(PydanticError, match="at most 20 characters"):
        Person(name="x" * 21)
    schema = Person.model_json_schema()["properties"]["name"]
    assert (schema["type"], schema["maxLength"], schema["minLength"]) == ("string", 20, 1)


# --- no Server header (finding 10) -----------------------------------------------------------


def test_no_service_announces_its_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from steadypay.cli import fraud, notifications, up

    runs: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: runs.append(options))
    for module in (up, fraud, notifications):
        monkeypatch.setattr(module, "configure_logging", lambda *a, **k: None)
    monkeypatch.setattr(fraud, "create_fraud_app", lambda *a, **k: None)
    monkeypatch.setattr(notifications, "create_notification_app", lambda *a, **k: None)
    monkeypatch.setenv("STEADYPAY_ADMIN_KEY", "k" * 40)  # run_api sets it for its workers
    settings = _settings()
    up.run_api(settings, host="127.0.0.1", port=1, workers=1)
    fraud.run_fraud_service(settings, "127.0.0.1", 1)
    notifications.run_notification_service(settings, "127.0.0.1", 1)
    assert len(runs) == 3
    assert [options.get("server_header", True) for options in runs] == [False] * 3
