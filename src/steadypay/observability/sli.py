"""Per-minute SLI rollups: each worker counts its requests in memory and upserts them into
``observability.sli_minutes`` from a background task.

:class:`SliRecorder` is a :class:`~steadypay.observability.metrics.RequestObserver`: on the
request path it only adds to counters of the current (service, minute). :class:`SliRollups`
runs the flusher: every ``STEADYPAY_SLI_FLUSH_INTERVAL_S`` one upsert statement adds every
pending minute to its row (several workers add to the same row, latency buckets element-wise).

What counts (docs/slo.md):

- a **failure** is a status >= 500, or a request slower than ``STEADYPAY_SLI_REQUEST_TIMEOUT_MS``
  (also counted in ``timeouts``: a client has most likely given up on it). 4xx are successes.
  A request whose handler raised or was cancelled before it started a response is the 500 the
  metrics middleware records (its default status), so it is a failure. A client that
  disconnects after sending its request does not stop the handler under uvicorn: the request is
  counted with the status the handler produced.
- ``/health/*`` and ``/metrics`` are not counted: probes and scrapes are not user traffic.

When the database cannot take a flush, the rows stay in memory (merged with newer counts) up to
``STEADYPAY_SLI_MAX_PENDING_MINUTES`` rows; beyond that the oldest minute is dropped and counted
in ``steadypay_sli_dropped_minutes_total{service}``. Nothing here ever blocks a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import asyncpg
import structlog
from prometheus_client import Counter

from steadypay.config import Settings
from steadypay.db.router import DatabaseRouter
from steadypay.errors import SteadypayError
from steadypay.observability.metrics import RequestObserver
from steadypay.observability.slo import LATENCY_BOUNDS_MS

log = structlog.get_logger(__name__)

SLI_DROPPED_MINUTES = Counter(
    "steadypay_sli_dropped_minutes_total",
    "SLI rollup rows (one service, one minute) dropped because the database could not take "
    "them before the in-memory bound was reached",
    ["service"],
)

EXCLUDED_ROUTES = ("/metrics", "/health")
EXCLUDED_PREFIXES = ("/health/",)
SHUTDOWN_FLUSH_TIMEOUT_S = 2.0

_UPSERT = """
INSERT INTO observability.sli_minutes AS s
       (service, minute, total, failures, timeouts, latency_le_ms, latency_counts)
SELECT r.service, r.minute, r.total, r.failures, r.timeouts, $2::integer[], r.latency_counts
FROM jsonb_to_recordset($1::jsonb) AS r(service text, minute timestamptz, total bigint,
                                        failures bigint, timeouts bigint, latency_counts bigint[])
ON CONFLICT (service, minute) DO UPDATE SET
    total = s.total + EXCLUDED.total,
    failures = s.failures + EXCLUDED.failures,
    timeouts = s.timeouts + EXCLUDED.timeouts,
    -- Element-wise addition. Rows written with other bounds (a deploy that changed them) keep
    -- their buckets; the new requests then count in total only, i.e. as slower than every
    -- bound: the latency SLI errs on the pessimistic side for that minute.
    latency_counts = CASE WHEN s.latency_le_ms = EXCLUDED.latency_le_ms
        THEN ARRAY(SELECT a + b
                   FROM unnest(s.latency_counts, EXCLUDED.latency_counts)
                        WITH ORDINALITY AS t(a, b, i)
                   ORDER BY i)
        ELSE s.latency_counts END
"""


class _Minute:
    """Counts of one (service, minute)."""

    __slots__ = ("counts", "failures", "timeouts", "total")

    def __init__(self, buckets: int) -> None:
        self.total = 0
        self.failures = 0
        self.timeouts = 0
        self.counts = [0] * buckets

    def add(self, other: _Minute) -> None:
        self.total += other.total
        self.failures += other.failures
        self.timeouts += other.timeouts
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]


def excluded(route: str) -> bool:
    """Probes and scrapes are not user traffic."""
    return route in EXCLUDED_ROUTES or route.startswith(EXCLUDED_PREFIXES)


class SliRecorder:
    """Counts requests per (service, minute) in memory; :meth:`flush` writes them.

    ``prefix`` is put before the service name the middleware reports (deployments sharing one
    database; tests isolating their traffic). ``clock`` returns Unix seconds (the wall clock:
    minutes are calendar minutes shared by every worker).
    """

    def __init__(
        self,
        *,
        request_timeout_s: float,
        prefix: str = "",
        max_pending_minutes: int = 60,
        flush_timeout_s: float = 5.0,
        bounds_ms: tuple[int, ...] = LATENCY_BOUNDS_MS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.prefix = prefix
        self._timeout_s = request_timeout_s
        self._max_pending = max_pending_minutes
        self._flush_timeout_s = flush_timeout_s
        self._bounds_s = [b / 1000 for b in bounds_ms]
        self._bounds_ms = list(bounds_ms)
        self._clock = clock
        self._pending: dict[tuple[str, int], _Minute] = {}
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SliRecorder:
        return cls(
            request_timeout_s=settings.sli_request_timeout_ms / 1000,
            prefix=settings.sli_service_prefix,
            max_pending_minutes=settings.sli_max_pending_minutes,
        )

    @property
    def pending_minutes(self) -> int:
        return len(self._pending)

    def observe(
        self, service: str, route: str, method: str, status: int, duration_s: float
    ) -> None:
        if excluded(route):
            return
        key = (self.prefix + service, int(self._clock() // 60) * 60)
        minute = self._pending.get(key)
        if minute is None:
            minute = self._pending[key] = _Minute(len(self._bounds_s))
            self._trim()
        minute.total += 1
        timed_out = duration_s > self._timeout_s
        if timed_out:
            minute.timeouts += 1
        if timed_out or status >= 500:
            minute.failures += 1
        bucket = bisect_left(self._bounds_s, duration_s)  # the first bound >= duration
        if bucket < len(self._bounds_s):
            minute.counts[bucket] += 1

    def _trim(self) -> None:
        while len(self._pending) > self._max_pending:
            oldest = min(self._pending, key=lambda k: k[1])
            del self._pending[oldest]
            SLI_DROPPED_MINUTES.labels(oldest[0]).inc()
            log.warning("sli_minute_dropped", service=oldest[0], minute=oldest[1])

    def _restore(self, batch: dict[tuple[str, int], _Minute]) -> None:
        for key, counts in batch.items():
            newer = self._pending.get(key)
            if newer is None:
                self._pending[key] = counts
            else:
                newer.add(counts)
        self._trim()

    async def flush(self, db: DatabaseRouter, timeout_s: float | None = None) -> bool:
        """Upsert every pending minute in one statement. False (the data kept for the next
        flush) when the database cannot take it; never raises for that."""
        async with self._lock:
            if not self._pending:
                return True
            batch, self._pending = self._pending, {}
            try:
                async with asyncio.timeout(timeout_s or self._flush_timeout_s):
                    await self._write(db, batch)
            except (SteadypayError, asyncpg.PostgresError, OSError, TimeoutError) as exc:
                # A timeout after the server committed would count that batch twice; the
                # statement is short and the flush timeout generous, so this is rare.
                self._restore(batch)
                log.warning("sli_flush_failed", error=type(exc).__name__, pending=len(batch))
                return False
            except BaseException:
                self._restore(batch)
                raise
            return True

    async def _write(self, db: DatabaseRouter, batch: dict[tuple[str, int], _Minute]) -> None:
        # Sorted, so two workers lock shared rows in the same order (no deadlock).
        rows = [
            {
                "service": service,
                "minute": datetime.fromtimestamp(minute, UTC).isoformat(),
                "total": counts.total,
                "failures": counts.failures,
                "timeouts": counts.timeouts,
                "latency_counts": counts.counts,
            }
            for (service, minute), counts in sorted(batch.items())
        ]
        async with db.writer().connection() as conn:
            await conn.execute(_UPSERT, json.dumps(rows), self._bounds_ms)


async def flush_forever(recorder: SliRecorder, db: DatabaseRouter, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await recorder.flush(db)
        except Exception:  # a bug here must not stop the rollups for good
            log.exception("sli_flush_crashed")


class SliRollups:
    """A recorder plugged into an app's request observers, and its flusher task.

    ``start`` in a lifespan (inside the event loop), ``stop`` at shutdown before the database
    closes: it writes what is left."""

    def __init__(
        self,
        recorder: SliRecorder,
        db: DatabaseRouter,
        observers: list[RequestObserver],
        interval_s: float,
    ) -> None:
        self.recorder = recorder
        self.db = db
        self._observers = observers
        observers.append(recorder)
        self._task = asyncio.create_task(flush_forever(recorder, db, interval_s))

    @classmethod
    def start(
        cls, settings: Settings, db: DatabaseRouter, observers: list[RequestObserver]
    ) -> SliRollups:
        return cls(
            SliRecorder.from_settings(settings), db, observers, settings.sli_flush_interval_s
        )

    async def flush(self) -> bool:
        return await self.recorder.flush(self.db)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(ValueError):
            self._observers.remove(self.recorder)
        await self.recorder.flush(self.db, timeout_s=SHUTDOWN_FLUSH_TIMEOUT_S)


@contextlib.asynccontextmanager
async def sli_rollups(
    settings: Settings, db: DatabaseRouter, observers: list[RequestObserver]
) -> AsyncIterator[SliRollups]:
    """SLI rollups for the lifespan of an app: recording from entry, written at exit."""
    rollups = SliRollups.start(settings, db, observers)
    try:
        yield rollups
    finally:
        await rollups.stop()
