"""The checks of a round, and running them: concurrently, each under its own timeout.

A check is any ``async () -> ComponentResult`` with a name (:class:`NamedCheck`): the real ones
below, or a callable a test injects. :func:`run_checks` turns a timeout or *any* exception of a
check (a bug included) into a ``fail`` result of that component, so a round always ends with
one result per check and a broken check counts as a failure, never as a silent skip.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis

from steadypay.db.router import DatabaseRouter
from steadypay.monitor import metrics
from steadypay.monitor.domain import ComponentResult, Status

CheckFn = Callable[[], Awaitable[ComponentResult]]
MAX_DETAIL = 300


@dataclass(frozen=True, slots=True)
class NamedCheck:
    name: str
    run: CheckFn
    timeout_s: float


def describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_DETAIL]


async def _guarded(check: NamedCheck) -> ComponentResult:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(check.timeout_s):
            result = await check.run()
    except TimeoutError:
        result = ComponentResult(
            check.name,
            Status.FAIL,
            time.perf_counter() - started,
            f"timed out after {check.timeout_s:g} s",
        )
    except Exception as exc:  # noqa: BLE001 - a broken check is a failed component, not a crash
        result = ComponentResult(
            check.name, Status.FAIL, time.perf_counter() - started, describe(exc)
        )
    metrics.CHECK_DURATION.labels(check.name).observe(time.perf_counter() - started)
    return result


async def run_checks(checks: Sequence[NamedCheck]) -> list[ComponentResult]:
    """Every check at once; one result per check, in the order given."""
    return list(await asyncio.gather(*(_guarded(c) for c in checks)))


def _elapsed(started: float) -> float:
    return time.perf_counter() - started


class ApiHealthCheck:
    """GET {api}/health/ready: 200 (pass or warn) is a pass, anything else a failure."""

    def __init__(self, http: httpx.AsyncClient, api_url: str, timeout_s: float) -> None:
        self._http = http
        self._url = api_url.rstrip("/") + "/health/ready"
        self._timeout_s = timeout_s

    async def __call__(self) -> ComponentResult:
        started = time.perf_counter()
        try:
            response = await self._http.get(self._url, timeout=self._timeout_s)
        except httpx.HTTPError as exc:
            return ComponentResult("api", Status.FAIL, _elapsed(started), describe(exc))
        status = Status.PASS if response.status_code == 200 else Status.FAIL
        detail = None if status is Status.PASS else f"/health/ready answered {response.status_code}"
        return ComponentResult(
            "api", status, _elapsed(started), detail, {"http_status": response.status_code}
        )


class DatabaseCheck:
    """A real query on the monitor's own one-connection pool, under a statement timeout: the
    primary answers, is writable (not a standby in recovery) and its ledger is readable."""

    QUERY = """
        SELECT pg_is_in_recovery() AS standby,
               (SELECT count(*) FROM (SELECT 1 FROM wallets LIMIT 1) w) AS readable
    """

    def __init__(self, db: DatabaseRouter, timeout_s: float) -> None:
        self._db = db
        self._timeout_s = timeout_s

    async def __call__(self) -> ComponentResult:
        started = time.perf_counter()
        async with self._db.writer().connection() as conn:
            row = await conn.fetchrow(self.QUERY, timeout=self._timeout_s)
        assert row is not None
        if row["standby"]:
            return ComponentResult(
                "database", Status.FAIL, _elapsed(started), "the database is a standby (read-only)"
            )
        return ComponentResult("database", Status.PASS, _elapsed(started))


@dataclass(frozen=True, slots=True)
class Dependency:
    name: str
    url: str
    critical: bool


class DependenciesCheck:
    """The fraud and notification services (GET /health/ready) and Redis (PING), concurrently.

    One down that is not critical (``STEADYPAY_DEPENDENCIES__<NAME>__CRITICAL``, false by
    default; Redis is never critical: everything falls back to local state or PostgreSQL) makes
    the component ``warn``, which does not fail the round; a critical one down makes it fail.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        services: Sequence[Dependency],
        redis: Redis | None,
        timeout_s: float,
    ) -> None:
        self._http = http
        self._services = tuple(services)
        self._redis = redis
        self._timeout_s = timeout_s

    async def _service(self, dep: Dependency) -> tuple[str, bool, bool, dict[str, Any]]:
        started = time.perf_counter()
        try:
            response = await self._http.get(
                dep.url.rstrip("/") + "/health/ready", timeout=self._timeout_s
            )
            ok = response.status_code == 200
            info: dict[str, Any] = {"http_status": response.status_code}
        except httpx.HTTPError as exc:
            ok, info = False, {"error": describe(exc)}
        info |= {"status": "up" if ok else "down", "latency_ms": _ms(started)}
        return dep.name, ok, dep.critical, info

    async def _redis_ping(self) -> tuple[str, bool, bool, dict[str, Any]]:
        assert self._redis is not None
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s):
                ok = bool(await self._redis.ping())
            info: dict[str, Any] = {}
        except Exception as exc:  # noqa: BLE001 - any Redis client error means "down"
            ok, info = False, {"error": describe(exc)}
        info |= {"status": "up" if ok else "down", "latency_ms": _ms(started)}
        return "redis", ok, False, info

    async def __call__(self) -> ComponentResult:
        started = time.perf_counter()
        probes = [self._service(d) for d in self._services]
        if self._redis is not None:
            probes.append(self._redis_ping())
        answers = await asyncio.gather(*probes)
        observed = {name: info for name, _, _, info in answers}
        critical_down = [name for name, ok, critical, _ in answers if not ok and critical]
        down = [name for name, ok, _, _ in answers if not ok]
        if critical_down:
            status, detail = Status.FAIL, f"critical dependency down: {', '.join(critical_down)}"
        elif down:
            status, detail = Status.WARN, f"degraded: {', '.join(down)} down"
        else:
            status, detail = Status.PASS, None
        return ComponentResult("dependencies", status, _elapsed(started), detail, observed)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


class PatroniClusterCheck:
    """What the members of a Patroni cluster say of themselves (``GET /patroni`` on each
    configured REST URL, concurrently): Patroni is the authority on who is primary, so this
    check only observes and reports — it never promotes or demotes anything.

    ``fail``: no member runs as primary, or two do (a split brain: two members would take
    writes). ``warn``: a member does not answer or does not stream (the synchronous copy a
    commit waits for has fewer candidates), or the primary says the DCS has no leader key
    (for a moment during a failover). Observed: each member's role, state,
    timeline and replay lag in bytes behind the primary.
    """

    def __init__(self, http: httpx.AsyncClient, urls: Sequence[str], timeout_s: float) -> None:
        if not urls:
            raise ValueError("PatroniClusterCheck needs at least one Patroni REST URL")
        self._http = http
        self._urls = tuple(u.rstrip("/") for u in urls)
        self._timeout_s = timeout_s

    async def _member(self, url: str) -> tuple[str, dict[str, Any] | None]:
        try:
            response = await self._http.get(url + "/patroni", timeout=self._timeout_s)
            body = response.json()  # 503 while its PostgreSQL is down: the body says why
        except (httpx.HTTPError, ValueError):
            return url, None
        return url, body if isinstance(body, dict) else None

    async def __call__(self) -> ComponentResult:
        started = time.perf_counter()
        answers = await asyncio.gather(*(self._member(u) for u in self._urls))
        status, detail, observed = evaluate_patroni(answers)
        for role in ("primary", "replica", "unreachable", "other"):
            metrics.CLUSTER_MEMBERS.labels(role).set(
                sum(1 for m in observed["members"] if m["role"] == role)
            )
        return ComponentResult("database_cluster", status, _elapsed(started), detail, observed)


def evaluate_patroni(
    answers: Sequence[tuple[str, dict[str, Any] | None]],
) -> tuple[Status, str | None, dict[str, Any]]:
    """The status, detail and observed members from each URL's ``/patroni`` body (None when
    it did not answer). Pure, so the split-brain rule is unit-tested."""
    members: list[dict[str, Any]] = []
    for url, doc in answers:
        if doc is None:
            members.append({"url": url, "role": "unreachable"})
            continue
        running = doc.get("state") == "running"
        raw_role = doc.get("role")
        if raw_role in ("primary", "master") and running:
            role = "primary"
        elif raw_role == "replica":
            role = "replica"
        else:
            role = "other"
        members.append(
            {
                "url": url,
                "name": doc.get("patroni", {}).get("name"),
                "role": role,
                "state": str(doc.get("replication_state") or doc.get("state") or "unknown"),
                "timeline": doc.get("timeline"),
                "location": _lsn_of(doc, primary=role == "primary"),
                "unlocked": bool(doc.get("cluster_unlocked")),
            }
        )
    primaries = [m for m in members if m["role"] == "primary"]
    top = max((m["location"] for m in primaries if m["location"] is not None), default=None)
    for m in members:
        location = m.pop("location", None)
        if m["role"] == "replica" and top is not None and location is not None:
            m["lag_bytes"] = max(0, top - location)
        elif m["role"] == "primary":
            m["lag_bytes"] = 0
    observed: dict[str, Any] = {
        "members": members,
        "primary": primaries[0]["name"] if len(primaries) == 1 else None,
    }
    if not primaries:
        return Status.FAIL, "no member runs as primary", observed
    if len(primaries) > 1:
        names = ", ".join(str(m["name"]) for m in primaries)
        return (
            Status.FAIL,
            f"split brain: {len(primaries)} members run as primary ({names})",
            (observed),
        )
    problems = [
        f"{m.get('name') or m['url']} {m['role'] if m['role'] != 'replica' else m['state']}"
        for m in members
        if m["role"] != "primary" and not (m["role"] == "replica" and m["state"] == "streaming")
    ]
    if primaries[0]["unlocked"]:
        problems.append(f"{primaries[0]['name']} runs as primary but the DCS has no leader key")
    if problems:
        return Status.WARN, "degraded: " + "; ".join(problems), observed
    return Status.PASS, None, observed


def _lsn_of(doc: dict[str, Any], *, primary: bool) -> int | None:
    xlog = doc.get("xlog") or {}
    value = xlog.get("location") if primary else xlog.get("replayed_location")
    return value if isinstance(value, int) and not isinstance(value, bool) else None
