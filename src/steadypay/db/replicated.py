"""A :class:`~steadypay.db.router.DatabaseRouter` over a primary and its replicas.

Writes (and ``STRONG`` reads) go to the writer pool: a libpq multi-host URL with
``target_session_attrs=read-write`` (or a managed writer endpoint), so after a failover new
connections find the promoted primary by themselves; a connection that finds it has reached a
standby makes the pool reconnect every connection (``25006`` in :mod:`steadypay.db.pool`).

``BOUNDED`` reads go round-robin to the standbys (a member listed that is now the primary is
skipped: the writer pool serves it) that are up and *caught up*: a probe reads the
primary's WAL position, then each replica's replay position; a replica that has replayed past
what the primary had is caught up as of that moment, and its lag is the time since it last was.
A replica whose lag exceeds ``max_lag_s``, one that has not replayed past the request's
consistency token (:func:`~steadypay.db.router.read_after_lsn`), or one that is down, is
skipped; with none left the primary serves the read. A read falls back to the primary only if
its replica failed *before* the read began (acquiring the connection): a query that failed
half-way is not run again elsewhere.

Every choice is counted in ``steadypay_db_router_decisions_total{target, reason}``; each
member's role and lag are gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
import structlog
from prometheus_client import Counter, Gauge

from steadypay.db.pool import Database, PoolStats
from steadypay.db.router import Consistency, Pool, read_after_lsn
from steadypay.errors import DatabaseUnavailable

log = structlog.get_logger(__name__)

ROUTER_DECISIONS = Counter(
    "steadypay_db_router_decisions_total",
    "Where the database router sent a unit of work, and why",
    ["service", "target", "reason"],
)
MEMBER_LAG = Gauge(
    "steadypay_db_replica_lag_seconds",
    "Seconds since the replica had replayed all the primary had written (NaN: unknown)",
    ["service", "member"],
    multiprocess_mode="mostrecent",
)
MEMBER_IN_RECOVERY = Gauge(
    "steadypay_db_member_in_recovery",
    "1 for a member that is a standby, 0 for the primary, -1 when it does not answer",
    ["service", "member"],
    multiprocess_mode="mostrecent",
)

_PRIMARY_POSITION = "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"
_REPLICA_POSITION = """
SELECT pg_is_in_recovery() AS standby,
       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END
         - '0/0'::pg_lsn AS replayed
"""


def member_name(url: str, index: int) -> str:
    """``host:port`` of a replica's URL (for metrics and logs), else ``replica<index>``."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return f"replica{index}"
    if not host:
        return f"replica{index}"
    return f"{host}:{port or 5432}"


@dataclass(slots=True)
class Replica:
    """A member that may serve ``BOUNDED`` reads, as the last probe saw it."""

    name: str
    db: Database
    up: bool = False
    standby: bool = True
    replayed: int | None = None
    caught_up_at: float | None = None
    """Monotonic time of the last probe at which it had replayed all the primary had."""

    def lag_s(self, now: float) -> float | None:
        return None if self.caught_up_at is None else max(0.0, now - self.caught_up_at)


class _FallbackReader:
    """A replica's pool that hands the read to the primary if the replica cannot even give a
    connection (nothing of the read has run yet)."""

    def __init__(self, router: ReplicatedDatabase, replica: Replica) -> None:
        self._router = router
        self._replica = replica

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        started = False
        try:
            async with self._replica.db.connection() as conn:
                started = True
                yield conn
        except DatabaseUnavailable:
            if started:
                raise
            self._replica.up = False
            self._router.decided("primary", "replica_unavailable")
            async with self._router.writer().connection() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.connection() as conn, conn.transaction(readonly=True):
            yield conn


class ReplicatedDatabase:
    """Writer pool + replica pools, with a background probe of the replicas' lag."""

    def __init__(
        self,
        primary: Database,
        replicas: Mapping[str, Database],
        # ``replicas`` may list every member: the probe tells which are standbys now
        *,
        max_lag_s: float = 1.0,
        probe_interval_s: float = 0.2,
        probe_timeout_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._primary = primary
        self.replicas = [Replica(name, db) for name, db in replicas.items()]
        self.max_lag_s = max_lag_s
        self._probe_interval_s = probe_interval_s
        self._probe_timeout_s = probe_timeout_s
        self._monotonic = monotonic
        self._turn = itertools.count()
        self._prober: asyncio.Task[None] | None = None
        self._decisions: dict[tuple[str, str], Counter] = {}

    # --- DatabaseRouter ------------------------------------------------------------------------

    @property
    def service(self) -> str:
        return self._primary.service

    def writer(self) -> Database:
        return self._primary

    def reader(self, consistency: Consistency = Consistency.STRONG) -> Pool:
        if consistency is Consistency.STRONG:
            return self._primary
        after = read_after_lsn()
        now = self._monotonic()
        reason = "no_replica"
        eligible = []
        for replica in self.replicas:
            lag = replica.lag_s(now)
            if not replica.up or not replica.standby:  # down, or the primary (reads: writer)
                continue
            if lag is None or lag > self.max_lag_s:
                reason = "replica_lagging"
                continue
            if after is not None and (replica.replayed is None or replica.replayed < after):
                reason = "token_not_replayed"
                continue
            eligible.append(replica)
        if not eligible:
            self.decided("primary", reason)
            return self._primary
        chosen = eligible[next(self._turn) % len(eligible)]
        self.decided(chosen.name, "bounded" if after is None else "token_replayed")
        return _FallbackReader(self, chosen)

    async def position(self) -> int | None:
        async with self._primary.connection() as conn:
            return int(await conn.fetchval(_PRIMARY_POSITION))

    def pool_stats(self) -> PoolStats:
        return self._primary.pool_stats()

    async def close(self) -> None:
        await self.stop_probing()
        for replica in self.replicas:
            await replica.db.close()
        await self._primary.close()

    # --- the probe -----------------------------------------------------------------------------

    def decided(self, target: str, reason: str) -> None:
        counter = self._decisions.get((target, reason))
        if counter is None:
            counter = ROUTER_DECISIONS.labels(self.service, target, reason)
            self._decisions[(target, reason)] = counter
        counter.inc()

    def start_probing(self) -> None:
        if self._prober is None:
            self._prober = asyncio.create_task(self._probe_forever(), name="replica-probe")

    async def stop_probing(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
            self._prober = None

    async def probe_once(self) -> None:
        """Read the primary's WAL position, then each replica's replay position."""
        started = self._monotonic()
        try:
            async with asyncio.timeout(self._probe_timeout_s):
                async with self._primary.connection() as conn:
                    primary_at: int | None = int(await conn.fetchval(_PRIMARY_POSITION))
        except (TimeoutError, DatabaseUnavailable):
            primary_at = None  # no primary now (a failover): lag keeps growing
        await asyncio.gather(*(self._probe(r, primary_at, started) for r in self.replicas))

    async def _probe(self, replica: Replica, primary_at: int | None, started: float) -> None:
        try:
            async with asyncio.timeout(self._probe_timeout_s):
                async with replica.db.connection() as conn:
                    row = await conn.fetchrow(_REPLICA_POSITION)
        except (TimeoutError, DatabaseUnavailable):
            replica.up = False
            MEMBER_IN_RECOVERY.labels(self.service, replica.name).set(-1)
            MEMBER_LAG.labels(self.service, replica.name).set(float("nan"))
            return
        assert row is not None
        replica.up, replica.standby = True, bool(row["standby"])
        replica.replayed = None if row["replayed"] is None else int(row["replayed"])
        if not replica.standby or (
            primary_at is not None
            and replica.replayed is not None
            and replica.replayed >= primary_at
        ):
            replica.caught_up_at = started
        MEMBER_IN_RECOVERY.labels(self.service, replica.name).set(1 if replica.standby else 0)
        lag = replica.lag_s(self._monotonic())
        MEMBER_LAG.labels(self.service, replica.name).set(float("nan") if lag is None else lag)

    async def _probe_forever(self) -> None:
        while True:
            try:
                await self.probe_once()
            except Exception:  # a probe's bug must not stop routing; reads go to the primary
                log.exception("replica_probe_failed")
                for replica in self.replicas:
                    replica.up = False
            await asyncio.sleep(self._probe_interval_s)
