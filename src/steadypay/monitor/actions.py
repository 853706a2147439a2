"""What a failover does: the pluggable :class:`FailoverAction`.

An action gets a :class:`FailoverRequest` (why, when, which failover row) and returns an
:class:`ActionResult` (``succeeded``, ``failed`` or ``logged``) with details to record; it must
finish within its own timeout and never raise for an expected failure. Three are built in:

- :class:`CommandAction` runs ``STEADYPAY_MONITOR_FAILOVER_COMMAND`` with ``/bin/sh -c``, the
  reason in ``STEADYPAY_FAILOVER_*`` environment variables, killed (with its process group) at
  the timeout; exit status 0 is success;
- :class:`WebhookAction` POSTs the request as JSON to ``STEADYPAY_MONITOR_FAILOVER_WEBHOOK``;
  a 2xx answer is success;
- :class:`LogOnlyAction`, the default, only logs and records "no action configured".

The disaster-recovery runbook plugs in as one more class with the same ``name`` and
``__call__``, chosen in :func:`steadypay.monitor.service.build_action`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import httpx
import structlog

log = structlog.get_logger(__name__)

Outcome = Literal["succeeded", "failed", "logged"]
OUTPUT_TAIL = 2_000


@dataclass(frozen=True, slots=True)
class FailoverRequest:
    failover_id: int
    monitor_id: str
    reason: str
    consecutive_failures: int
    triggered_at: datetime
    components: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "steadypay.monitor.failover",
            "failover_id": str(self.failover_id),
            "monitor_id": self.monitor_id,
            "reason": self.reason,
            "consecutive_failures": self.consecutive_failures,
            "triggered_at": self.triggered_at.isoformat(),
            "components": self.components,
        }


@dataclass(frozen=True, slots=True)
class ActionResult:
    outcome: Outcome
    detail: dict[str, Any] = field(default_factory=dict)


class FailoverAction(Protocol):
    @property
    def name(self) -> str: ...

    async def __call__(self, request: FailoverRequest) -> ActionResult: ...


class LogOnlyAction:
    name = "log_only"

    async def __call__(self, request: FailoverRequest) -> ActionResult:
        log.critical(
            "monitor_failover_triggered",
            failover_id=request.failover_id,
            reason=request.reason,
            action="none configured",
        )
        return ActionResult("logged", {"note": "failover_triggered (no action configured)"})


def _tail(data: bytes) -> str:
    return data[-OUTPUT_TAIL:].decode(errors="replace")


class CommandAction:
    name = "command"

    def __init__(self, command: str, timeout_s: float) -> None:
        if not command.strip():
            raise ValueError("the failover command is empty")
        self._command = command
        self._timeout_s = timeout_s

    def environment(self, request: FailoverRequest) -> dict[str, str]:
        return os.environ | {
            "STEADYPAY_FAILOVER_ID": str(request.failover_id),
            "STEADYPAY_FAILOVER_REASON": request.reason,
            "STEADYPAY_FAILOVER_MONITOR_ID": request.monitor_id,
            "STEADYPAY_FAILOVER_CONSECUTIVE_FAILURES": str(request.consecutive_failures),
            "STEADYPAY_FAILOVER_TRIGGERED_AT": request.triggered_at.isoformat(),
        }

    async def __call__(self, request: FailoverRequest) -> ActionResult:
        process = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            self._command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.environment(request),
            start_new_session=True,  # its own process group: a timeout kills its children too
        )
        try:
            async with asyncio.timeout(self._timeout_s):
                stdout, stderr = await process.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            return ActionResult("failed", {"error": f"timed out after {self._timeout_s:g} s"})
        except asyncio.CancelledError:  # the monitor is stopping: do not leave it running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            raise
        code = process.returncode
        detail = {"exit_code": code, "stdout": _tail(stdout), "stderr": _tail(stderr)}
        return ActionResult("succeeded" if code == 0 else "failed", detail)


class WebhookAction:
    name = "webhook"

    def __init__(self, url: str, http: httpx.AsyncClient, timeout_s: float) -> None:
        self._url = url
        self._http = http
        self._timeout_s = timeout_s

    async def __call__(self, request: FailoverRequest) -> ActionResult:
        try:
            response = await self._http.post(
                self._url, json=request.to_json(), timeout=self._timeout_s
            )
        except httpx.HTTPError as exc:
            return ActionResult("failed", {"error": type(exc).__name__})
        ok = 200 <= response.status_code < 300
        return ActionResult("succeeded" if ok else "failed", {"http_status": response.status_code})
