"""Readiness in the IETF health-check format, and the gauges read from PostgreSQL at scrape time.

The format is draft-inadarei-api-health-check ("Health Check Response Format for HTTP APIs",
media type ``application/health+json``): a top-level ``status`` (``pass``, ``warn`` or
``fail``), ``version``, ``serviceId``, ``description`` and ``checks``, a map from
``component:measurement`` to a *list* of check objects (``componentType``, ``status``,
``observedValue``, ``observedUnit``, ``time``, and ``output`` when not passing).

A service's :class:`Readiness` holds its :class:`Probe` objects. ``report()`` runs them all at
once, each under the same time limit, so a ready call takes at most about that limit whatever
is down. A probe that raises or runs out of time becomes a ``fail`` check if the probe is
critical (the primary database), else a ``warn`` (Redis, a backlog). The worst status wins; a
``fail`` is answered with 503.

Nothing here imports a web framework: the routes turn a :class:`HealthReport` into a response.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import structlog
from redis.asyncio import Redis

from steadypay import __version__
from steadypay.db.pool import publish_pool_stats
from steadypay.db.router import DatabaseRouter
from steadypay.errors import SteadypayError
from steadypay.observability.gauges import PROBE_LATENCY

log = structlog.get_logger(__name__)

MEDIA_TYPE = "application/health+json"


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 (not a password)
    WARN = "warn"
    FAIL = "fail"


_RANK = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


def worst(statuses: Sequence[Status]) -> Status:
    return max(statuses, key=_RANK.__getitem__, default=Status.PASS)


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Check:
    """One measurement of one component: a value in the draft's ``checks`` lists."""

    key: str
    """``component:measurement``, e.g. ``postgresql:responseTime``."""
    component_type: str
    status: Status
    observed_value: Any = None
    observed_unit: str | None = None
    output: str | None = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    component_id: str | None = None
    """Which one, when a key has several (``postgresql:replicaLag`` of each replica)."""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"componentId": self.component_id} if self.component_id else {}
        body |= {
            "componentType": self.component_type,
            "status": self.status.value,
            "observedValue": self.observed_value,
        }
        if self.observed_unit is not None:
            body["observedUnit"] = self.observed_unit
        if self.output is not None and self.status is not Status.PASS:
            body["output"] = self.output
        body["time"] = rfc3339(self.time)
        return body


@dataclass(frozen=True, slots=True)
class HealthReport:
    service_id: str
    description: str
    checks: tuple[Check, ...]
    version: str = __version__

    @property
    def status(self) -> Status:
        return worst([c.status for c in self.checks])

    @property
    def http_status(self) -> int:
        """503 for ``fail``; 200 for ``pass`` and ``warn`` (the draft's rule)."""
        return 503 if self.status is Status.FAIL else 200

    def check(self, key: str) -> Check:
        """The first check with this key (tests, the monitor)."""
        return next(c for c in self.checks if c.key == key)

    def to_json(self) -> dict[str, Any]:
        checks: dict[str, list[dict[str, Any]]] = {}
        for check in self.checks:
            checks.setdefault(check.key, []).append(check.to_json())
        return {
            "status": self.status.value,
            "version": self.version,
            "serviceId": self.service_id,
            "description": self.description,
            "checks": checks,
        }


@dataclass(frozen=True, slots=True)
class Probe:
    """Measures one component. ``run`` returns its checks (usually one); if it raises or runs
    out of time, the component is reported under ``key`` as ``fail`` when ``critical``, else
    ``warn``."""

    key: str
    component_type: str
    critical: bool
    run: Callable[[], Awaitable[list[Check]]]

    def failed(self, output: str) -> Check:
        status = Status.FAIL if self.critical else Status.WARN
        return Check(self.key, self.component_type, status, output=output)


class Readiness:
    """One service's ``/health/ready`` (``report``) and its scrape-time refresh (``scrape``).

    ``scrape`` runs the probes for their side effect on the gauges (probe latency, pool) and
    then ``refreshers`` (the API's DB-derived gauges); it never raises."""

    def __init__(
        self,
        service: str,
        description: str,
        probes: Sequence[Probe],
        *,
        timeout_s: float = 1.0,
        refreshers: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self.service = service
        self.service_id = f"steadypay-{service}"
        self.description = description
        self.probes = tuple(probes)
        self.timeout_s = timeout_s
        self.refreshers = tuple(refreshers)

    async def report(self) -> HealthReport:
        results = await asyncio.gather(*(self._run(p) for p in self.probes))
        checks = tuple(c for found in results for c in found)
        return HealthReport(self.service_id, self.description, checks)

    async def scrape(self) -> None:
        jobs = [self._run(p) for p in self.probes] + [self._refresh(r) for r in self.refreshers]
        await asyncio.gather(*jobs)

    async def _run(self, probe: Probe) -> list[Check]:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await probe.run()
        except TimeoutError:
            return [probe.failed(f"no answer within {self.timeout_s:g} s")]
        except Exception as exc:  # noqa: BLE001 - a broken probe is a failed check, not a 500
            log.warning("health_probe_failed", check=probe.key, error=type(exc).__name__)
            return [probe.failed(_describe(exc))]

    async def _refresh(self, refresh: Callable[[], Awaitable[None]]) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                await refresh()
        except Exception as exc:  # noqa: BLE001 - /metrics answers; gauges keep their values
            log.warning("metrics_refresh_failed", error=type(exc).__name__)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SteadypayError):
        return exc.code  # e.g. database_unavailable (its message is meant for API callers)
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


# --- probes ---------------------------------------------------------------------------------


def postgresql_probe(db: DatabaseRouter, timeout_s: float) -> Probe:
    """``postgresql:responseTime``: a ``SELECT 1`` on the primary's pool (acquire included), in ms.
    Critical: without its database a service can do nothing useful."""
    key = "postgresql:responseTime"

    async def query() -> None:
        async with db.writer().connection() as conn:
            await conn.fetchval("SELECT 1", timeout=timeout_s)

    async def run() -> list[Check]:
        elapsed = await _timed(PROBE_LATENCY.labels(db.service, "postgresql"), query())
        return [Check(key, "datastore", Status.PASS, round(elapsed * 1000, 3), "ms")]

    return Probe(key, "datastore", True, run)


async def _timed(gauge: Any, action: Coroutine[Any, Any, None]) -> float:
    """Seconds ``action`` took, also set on ``gauge`` (NaN when it failed)."""
    started = time.perf_counter()
    try:
        await action
    except BaseException:
        gauge.set(math.nan)
        raise
    elapsed = time.perf_counter() - started
    gauge.set(elapsed)
    return elapsed


def pool_probe(db: DatabaseRouter) -> Probe:
    """``postgresql:connections``: connections in use in this process's pool; ``warn`` while
    callers wait for one (the pool is exhausted). Also refreshes the pool gauges. List it
    first: it reads the pool before the other probes take connections from it."""
    key = "postgresql:connections"

    async def run() -> list[Check]:
        publish_pool_stats(db.service, now=True)
        stats = db.pool_stats()
        status = Status.WARN if stats.waiting else Status.PASS
        output = (
            f"{stats.in_use} of {stats.max_size} in use, {stats.idle} idle, {stats.waiting} waiting"
        )
        return [Check(key, "datastore", status, stats.in_use, "connections", output)]

    return Probe(key, "datastore", False, run)


def redis_probe(redis: Redis, service: str, timeout_s: float) -> Probe:
    """``redis:responseTime``: a PING, in ms. Not critical: its users fall back without it."""
    key = "redis:responseTime"

    async def ping() -> None:
        async with asyncio.timeout(timeout_s):
            # redis-py 7 types ping() as sync-or-async, 8 as async: Any fits both.
            pong: Any = redis.ping()
            await pong

    async def run() -> list[Check]:
        elapsed = await _timed(PROBE_LATENCY.labels(service, "redis"), ping())
        return [Check(key, "datastore", Status.PASS, round(elapsed * 1000, 3), "ms")]

    return Probe(key, "datastore", False, run)


@dataclass(frozen=True, slots=True)
class BacklogLimits:
    """Above either limit a backlog check says ``warn``."""

    count: int = 1000
    oldest_age_s: float = 300.0


def backlog_checks(
    component: str,
    count: int,
    oldest_age_s: float | None,
    limits: BacklogLimits,
    *,
    count_key: str = "backlog",
    age_key: str = "oldestPendingAge",
) -> list[Check]:
    """``<component>:backlog`` (a count) and ``<component>:oldestPendingAge`` (seconds)."""
    age = round(max(oldest_age_s, 0.0), 3) if oldest_age_s is not None else 0.0
    count_status = Status.WARN if count > limits.count else Status.PASS
    age_status = Status.WARN if age > limits.oldest_age_s else Status.PASS
    return [
        Check(
            f"{component}:{count_key}", "component", count_status, count, "events",
            f"{count} waiting (warn above {limits.count})",
        ),
        Check(
            f"{component}:{age_key}", "component", age_status, age, "s",
            f"the oldest has waited {age:g} s (warn above {limits.oldest_age_s:g} s)",
        ),
    ]  # fmt: skip


def replica_probes(router: DatabaseRouter) -> list[Probe]:
    """``postgresql:replicaLag``, a check per replica of a replicated router (none with one
    server): ``pass`` while it serves reads (up, within the lag bound), else ``warn`` —
    reads then go to the primary, nothing fails."""
    from steadypay.db.replicated import ReplicatedDatabase

    if not isinstance(router, ReplicatedDatabase):
        return []
    key = "postgresql:replicaLag"

    async def run() -> list[Check]:
        now = time.monotonic()
        checks = []
        for replica in router.replicas:
            lag = replica.lag_s(now)
            if not replica.up:
                status, output = Status.WARN, "not answering: reads go to the primary"
            elif lag is None or lag > router.max_lag_s:
                status, output = Status.WARN, f"behind by more than {router.max_lag_s:g} s"
            else:
                status, output = Status.PASS, None
            value = None if lag is None else round(lag, 3)
            checks.append(
                Check(key, "datastore", status, value, "s", output, component_id=replica.name)
            )
        return checks

    return [Probe(key, "datastore", False, run)]
