"""ReliableServiceClient against a real flaky HTTP server on loopback (real time, short)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import uvicorn

from steadypay.errors import CircuitOpenError, DependencyFailure, DependencyTimeout
from steadypay.resilience.client import ReliableServiceClient
from steadypay.resilience.pipeline import Pipeline, PipelineConfig
from steadypay.resilience.store import BreakerConfig, State
from tests.fakes import RecordingEvents


@dataclass
class Behaviour:
    fail_first: int = 0
    status: int = 500
    retry_after: str | None = None
    delay_s: float = 0.0
    requests: list[dict[str, str]] = field(default_factory=list)


class FlakyServer:
    """An ASGI app whose failures the test scripts: N failures, slowness, 503 + Retry-After."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()

    async def __call__(self, scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http":
            return
        b = self.behaviour
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        b.requests.append(headers | {":path": scope["path"]})
        if b.delay_s:
            await asyncio.sleep(b.delay_s)
        if len(b.requests) <= b.fail_first:
            status, headers = b.status, [(b"content-type", b"application/json")]
            if b.retry_after is not None:
                headers.append((b"retry-after", b.retry_after.encode()))
            body = b'{"error": "scripted failure"}'
        else:
            status, headers = 200, [(b"content-type", b"application/json")]
            body = json.dumps({"ok": True, "n": len(b.requests)}).encode()
        await send({"type": "http.response.start", "status": status, "headers": headers})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": body})  # type: ignore[operator]


@pytest.fixture
async def server() -> AsyncIterator[tuple[FlakyServer, str, uvicorn.Server]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = FlakyServer()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    task = asyncio.create_task(srv.serve())
    while not srv.started:
        await asyncio.sleep(0.01)
    try:
        yield app, f"http://127.0.0.1:{port}", srv
    finally:
        srv.should_exit = True
        await task


def client_for(url: str, events: RecordingEvents, **overrides: object) -> ReliableServiceClient:
    settings: dict[str, object] = {
        "total_timeout_s": 2.0, "attempt_timeout_s": 0.5, "max_attempts": 3,
        "backoff_base_s": 0.01, "backoff_cap_s": 0.05,
        "breaker": BreakerConfig(failure_threshold=5, reset_timeout_s=0.5),
    } | overrides  # fmt: skip
    config = PipelineConfig(**settings)  # type: ignore[arg-type]
    return ReliableServiceClient(url, Pipeline("flaky", config, events=events))


async def test_recovers_from_the_first_failures_with_retries(
    server: tuple[FlakyServer, str, uvicorn.Server],
) -> None:
    app, url, _ = server
    app.behaviour = Behaviour(fail_first=2, status=502)
    events = RecordingEvents()
    client = client_for(url, events)
    try:
        response = await client.get("/check")
    finally:
        await client.aclose()
    assert response.json() == {"ok": True, "n": 3}
    assert events.calls == ["failure", "retry", "failure", "retry", "success"]
    deadlines = [int(r["x-deadline-ms"]) for r in app.behaviour.requests]
    assert deadlines[0] <= 2000
    assert deadlines == sorted(deadlines, reverse=True)  # the budget shrinks per attempt


async def test_post_without_key_is_not_retried_with_key_is(
    server: tuple[FlakyServer, str, uvicorn.Server],
) -> None:
    app, url, _ = server
    events = RecordingEvents()
    client = client_for(url, events)
    try:
        app.behaviour = Behaviour(fail_first=1, status=503)
        with pytest.raises(DependencyFailure) as raised:
            await client.post("/pay", json={"a": 1})
        assert raised.value.status_code == 503
        assert len(app.behaviour.requests) == 1
        app.behaviour = Behaviour(fail_first=1, status=503)
        response = await client.post("/pay", json={"a": 1}, idempotency_key="k-1")
        assert response.status_code == 200
        keys = [r["idempotency-key"] for r in app.behaviour.requests]
        assert keys == ["k-1", "k-1"]  # the same key on every attempt
    finally:
        await client.aclose()


async def test_honours_retry_after_from_a_503(
    server: tuple[FlakyServer, str, uvicorn.Server],
) -> None:
    app, url, _ = server
    app.behaviour = Behaviour(fail_first=1, status=503, retry_after="1")
    client = client_for(url, RecordingEvents())
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        response = await client.get("/check")
        elapsed = loop.time() - started
    finally:
        await client.aclose()
    assert response.status_code == 200
    assert elapsed >= 1.0  # waited what the server asked, not the 10-50 ms backoff


async def test_4xx_is_returned_and_does_not_count(
    server: tuple[FlakyServer, str, uvicorn.Server],
) -> None:
    app, url, _ = server
    app.behaviour = Behaviour(fail_first=100, status=404)
    events = RecordingEvents()
    client = client_for(url, events, breaker=BreakerConfig(failure_threshold=2))
    try:
        for _ in range(5):
            assert (await client.get("/missing")).status_code == 404
    finally:
        await client.aclose()
    assert (await client.pipeline.breaker.snapshot()).state is State.CLOSED
    assert len(app.behaviour.requests) == 5


async def test_slow_answers_time_out_and_open_the_circuit(
    server: tuple[FlakyServer, str, uvicorn.Server],
) -> None:
    app, url, _ = server
    app.behaviour = Behaviour(delay_s=0.3)
    events = RecordingEvents()
    client = client_for(url, events, attempt_timeout_s=0.05, max_attempts=1,
                        breaker=BreakerConfig(failure_threshold=3, reset_timeout_s=30))  # fmt: skip
    try:
        for _ in range(3):
            with pytest.raises(DependencyTimeout):
                await client.get("/slow")
        with pytest.raises(CircuitOpenError) as raised:
            await client.get("/rejected")
        await asyncio.sleep(0.3)  # anything that was sent has reached the handler by now
    finally:
        await client.aclose()
    assert raised.value.retry_after_s is not None
    assert 29 < raised.value.retry_after_s <= 30
    # A timed-out call may or may not have reached the handler on a loaded machine (the
    # client gave up after 50 ms); the rejected call must never reach it.
    paths = [r[":path"] for r in app.behaviour.requests]
    assert "/rejected" not in paths
    assert len(paths) <= 3


async def test_server_down_then_back_half_open_recovery(
    server: tuple[FlakyServer, str, uvicorn.Server],
) -> None:
    app, url, srv = server
    events = RecordingEvents()
    client = client_for(url, events, max_attempts=1,
                        breaker=BreakerConfig(failure_threshold=3, reset_timeout_s=0.3,
                                              half_open_max_calls=2))  # fmt: skip
    try:
        assert (await client.get("/up")).status_code == 200
        srv.should_exit = True  # stop it entirely: connections are refused
        while srv.started and not srv.should_exit:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        for _ in range(3):
            with pytest.raises(DependencyFailure):
                await client.get("/down")
        with pytest.raises(CircuitOpenError):
            await client.get("/down")
        # bring a server back on the same port, wait out the open period, trials close it
        port = int(url.rsplit(":", 1)[1])
        back = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        task = asyncio.create_task(back.serve())
        while not back.started:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.35)
        assert (await client.get("/again")).status_code == 200
        assert (await client.get("/again")).status_code == 200
        assert (await client.pipeline.breaker.snapshot()).state is State.CLOSED
        back.should_exit = True
        await task
    finally:
        await client.aclose()
    assert [new for _, new, _ in events.transitions] == [
        State.OPEN, State.HALF_OPEN, State.CLOSED,
    ]  # fmt: skip
