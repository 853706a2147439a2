"""The failover actions for real: a shell command (environment, exit status, timeout) and a
webhook served by a real uvicorn on loopback."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response

from steadypay.monitor.actions import CommandAction, FailoverRequest, LogOnlyAction, WebhookAction
from tests.integration.conftest import free_port, serve

REQUEST = FailoverRequest(
    failover_id=42,
    monitor_id="host:123",
    reason="api fail: /health/ready answered 503",
    consecutive_failures=3,
    triggered_at=datetime(2026, 11, 24, 5, 0, tzinfo=UTC),
    components={"api": {"status": "fail"}},
)


async def test_the_command_gets_the_reason_and_its_exit_status_is_recorded() -> None:
    action = CommandAction(
        'echo "$STEADYPAY_FAILOVER_ID|$STEADYPAY_FAILOVER_REASON|'
        '$STEADYPAY_FAILOVER_CONSECUTIVE_FAILURES"; echo oops >&2',
        timeout_s=5.0,
    )
    result = await action(REQUEST)
    assert result.outcome == "succeeded"
    assert result.detail["exit_code"] == 0
    assert result.detail["stdout"].strip() == "42|api fail: /health/ready answered 503|3"
    assert result.detail["stderr"].strip() == "oops"

    failed = await CommandAction("exit 7", timeout_s=5.0)(REQUEST)
    assert failed.outcome == "failed"
    assert failed.detail["exit_code"] == 7


async def test_a_command_past_its_timeout_is_killed_and_failed() -> None:
    started = time.monotonic()
    result = await CommandAction("sleep 30 & sleep 30", timeout_s=0.2)(REQUEST)
    assert result.outcome == "failed"
    assert result.detail == {"error": "timed out after 0.2 s"}
    assert time.monotonic() - started < 5  # not the 30 s the command wanted


async def test_the_webhook_receives_the_failover_as_json() -> None:
    received: list[dict[str, Any]] = []
    status = {"code": 200}
    app = FastAPI()

    @app.post("/failover")
    async def hook(request: Request) -> Response:
        received.append(await request.json())
        return Response(status_code=status["code"])

    async with serve(app) as url, httpx.AsyncClient() as http:
        action = WebhookAction(f"{url}/failover", http, timeout_s=2.0)
        ok = await action(REQUEST)
        status["code"] = 500
        refused = await action(REQUEST)
        unreachable = await WebhookAction(
            f"http://127.0.0.1:{free_port()}/failover", http, timeout_s=1.0
        )(REQUEST)
    assert (ok.outcome, ok.detail) == ("succeeded", {"http_status": 200})
    assert (refused.outcome, refused.detail) == ("failed", {"http_status": 500})
    assert unreachable.outcome == "failed"
    assert received[0] == REQUEST.to_json()
    assert received[0]["event"] == "steadypay.monitor.failover"
    assert received[0]["failover_id"] == "42"


async def test_without_an_action_the_decision_is_only_logged() -> None:
    result = await LogOnlyAction()(REQUEST)
    assert result.outcome == "logged"
    assert result.detail == {"note": "failover_triggered (no action configured)"}
