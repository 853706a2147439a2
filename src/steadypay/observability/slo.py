"""Service level objectives from the per-minute SLI rollups: availability, the latency SLI,
the error budget and the SRE workbook's multiwindow burn rates.

The computation (:func:`slo_report`) is plain arithmetic over window sums, so unit tests run it
without a database; :func:`window_counts` is the one query that produces those sums from
``observability.sli_minutes``.

Definitions (docs/slo.md explains them for operators):

- availability = (total - failed) / total; a failure is a 5xx or a request slower than the
  request timeout; 4xx are successes. No request in the window → ``null`` and ``no_data``,
  never 100%.
- latency SLI = share of requests whose duration is at most the threshold, which must be one
  of :data:`LATENCY_BOUNDS_MS` (exact counts, no interpolation).
- error budget = (1 - objective) * total failures allowed; remaining = 1 - failed / allowed,
  negative once the budget is overspent.
- burn rate = error rate / (1 - objective): 1 spends the budget exactly over the SLO period.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from steadypay.config import LATENCY_BOUNDS_MS as LATENCY_BOUNDS_MS
from steadypay.db.router import Consistency

if TYPE_CHECKING:
    from steadypay.db.router import DatabaseRouter

WINDOWS: Mapping[str, timedelta] = {
    "5m": timedelta(minutes=5),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "1d": timedelta(days=1),
    "3d": timedelta(days=3),
    "30d": timedelta(days=30),
}
REPORT_WINDOWS = ("1h", "1d", "30d")
"""The windows ``GET /v1/admin/slo`` reports on."""


@dataclass(frozen=True, slots=True)
class BurnRatePair:
    long: str
    short: str
    threshold: float
    severity: str


BURN_RATE_PAIRS = (
    BurnRatePair("1h", "5m", 14.4, "page"),  # 2% of a 30-day budget in one hour
    BurnRatePair("6h", "30m", 6.0, "page"),  # 5% in six hours
    BurnRatePair("3d", "6h", 1.0, "ticket"),  # 10% in three days
)
"""The SRE workbook's multiwindow, multi-burn-rate alert conditions (chapter 5, "Alerting on
SLOs"): alert when both windows burn faster than the threshold."""


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """Sums over the rollup rows of one window."""

    total: int = 0
    failed: int = 0
    timeouts: int = 0
    within_latency: int = 0


def ratio(part: float, whole: float) -> float | None:
    return None if whole <= 0 else part / whole


def burn_rate(counts: WindowCounts, objective: float) -> float | None:
    """Error rate over the budgeted error rate; ``None`` with no request in the window."""
    error_rate = ratio(counts.failed, counts.total)
    return None if error_rate is None else error_rate / (1 - objective)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _status(counts: WindowCounts) -> str:
    return "ok" if counts.total > 0 else "no_data"


def burn_rate_json(
    pair: BurnRatePair, long: WindowCounts, short: WindowCounts, objective: float
) -> dict[str, Any]:
    rates = {"long": burn_rate(long, objective), "short": burn_rate(short, objective)}
    long_rate, short_rate = rates["long"], rates["short"]
    alerting = (
        long_rate is not None
        and short_rate is not None
        and long_rate > pair.threshold
        and short_rate > pair.threshold
    )

    def one(name: str, counts: WindowCounts) -> dict[str, Any]:
        return {
            "window": getattr(pair, name),
            "status": _status(counts),
            "requests": counts.total,
            "failed": counts.failed,
            "burn_rate": _round(rates[name]),
        }

    return {
        "long_window": pair.long,
        "short_window": pair.short,
        "threshold": pair.threshold,
        "severity": pair.severity,
        "status": "ok" if long.total > 0 and short.total > 0 else "no_data",
        "long": one("long", long),
        "short": one("short", short),
        "alerting": alerting,
    }


def slo_report(
    *,
    window: str,
    service: str,
    objective: float,
    latency_threshold_ms: int,
    counts: Mapping[str, WindowCounts],
    now: datetime,
) -> dict[str, Any]:
    """The body of ``GET /v1/admin/slo``. ``counts`` holds the sums of ``window`` and of every
    window named in :data:`BURN_RATE_PAIRS`."""
    c = counts[window]
    allowed = c.total * (1 - objective)
    consumed_fraction = ratio(c.failed, allowed)
    return {
        "window": window,
        "service": service,
        "status": _status(c),
        "start": (now - WINDOWS[window]).isoformat(),
        "end": now.isoformat(),
        "objective": objective,
        "requests": {"total": c.total, "failed": c.failed, "timeouts": c.timeouts},
        "availability": _round(ratio(c.total - c.failed, c.total)),
        "latency": {
            "threshold_ms": latency_threshold_ms,
            "within_threshold": c.within_latency,
            "sli": _round(ratio(c.within_latency, c.total)),
        },
        "error_budget": {
            "allowed_failures": _round(allowed),
            "consumed_failures": c.failed,
            "consumed_fraction": _round(consumed_fraction),
            "remaining_fraction": _round(
                None if consumed_fraction is None else 1 - consumed_fraction
            ),
        },
        "burn_rates": [
            burn_rate_json(pair, counts[pair.long], counts[pair.short], objective)
            for pair in BURN_RATE_PAIRS
        ],
    }


def windows_for(window: str) -> dict[str, timedelta]:
    """The windows a report on ``window`` needs: itself and the burn-rate windows."""
    names = {window} | {p.long for p in BURN_RATE_PAIRS} | {p.short for p in BURN_RATE_PAIRS}
    return {name: WINDOWS[name] for name in sorted(names)}


_WINDOW_SUMS = """
SELECT w.name,
       coalesce(sum(s.total), 0)::bigint AS total,
       coalesce(sum(s.failures), 0)::bigint AS failed,
       coalesce(sum(s.timeouts), 0)::bigint AS timeouts,
       coalesce(sum((SELECT sum(b.n) FROM unnest(s.latency_le_ms, s.latency_counts) AS b(le, n)
                     WHERE b.le <= $4)), 0)::bigint AS within_latency
FROM unnest($2::text[], $3::timestamptz[]) AS w(name, since)
LEFT JOIN observability.sli_minutes s
       ON s.service = $1 AND s.minute > w.since AND s.minute <= $5
GROUP BY w.name
"""


async def window_counts(
    db: DatabaseRouter,
    service: str,
    windows: Mapping[str, timedelta],
    latency_threshold_ms: int,
    now: datetime | None = None,
) -> dict[str, WindowCounts]:
    """Sums of ``service``'s rollups over each window ending at ``now``, in one query.

    A window of W minutes covers the rows of the W minutes that *start* in (now - W, now]: the
    current, partial minute included, the minute now - W excluded.
    """
    end = now or datetime.now(UTC)
    names = list(windows)
    since = [end - windows[name] for name in names]
    async with db.reader(Consistency.BOUNDED).connection() as conn:
        rows = await conn.fetch(_WINDOW_SUMS, service, names, since, latency_threshold_ms, end)
    return {
        r["name"]: WindowCounts(r["total"], r["failed"], r["timeouts"], r["within_latency"])
        for r in rows
    }


class SloReports:
    """``/v1/admin/slo``: a service's SLO report over a window, from the rollups."""

    def __init__(self, db: DatabaseRouter, *, objective: float, latency_threshold_ms: int) -> None:
        self._db = db
        self.objective = objective
        self.latency_threshold_ms = latency_threshold_ms

    async def report(
        self, window: str, service: str, now: datetime | None = None
    ) -> dict[str, Any]:
        at = now or datetime.now(UTC)
        counts = await window_counts(
            self._db, service, windows_for(window), self.latency_threshold_ms, at
        )
        return slo_report(
            window=window,
            service=service,
            objective=self.objective,
            latency_threshold_ms=self.latency_threshold_ms,
            counts=counts,
            now=at,
        )
