"""The PostgreSQL connection pool and the translation of driver errors into ours.

Every asyncpg error that can reach our code through :meth:`Database.connection` leaves it as a
:class:`~steadypay.errors.SteadypayError`: connection trouble and timeouts become
``DatabaseUnavailable`` (503), deadlocks and serialization failures ``TransactionConflict``
(retried by the ledger). Anything else is a bug and propagates as is.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

import asyncpg
from prometheus_client import Gauge

from steadypay.db.metrics import DB_POOL_CONNECTIONS, DB_POOL_SIZE_MAX
from steadypay.db.router import Consistency
from steadypay.errors import DatabaseUnavailable, LedgerContention, TransactionConflict
from steadypay.hooks import NO_FAULTS, FaultHook

# SQLSTATE classes/codes that mean "the database is not usable right now".
_UNAVAILABLE_SQLSTATES = frozenset(
    {
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, recovering)
        "57014",  # query_canceled (statement_timeout)
        "53300",  # too_many_connections
        "53100",  # disk_full
        "25006",  # read_only_sql_transaction (we reached a standby)
    }
)
_CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected


@dataclass(frozen=True, slots=True)
class PoolOptions:
    min_size: int = 2
    max_size: int = 20
    connect_timeout_s: float = 5.0
    acquire_timeout_s: float = 5.0
    statement_timeout_ms: int = 10_000
    lock_timeout_ms: int = 5_000
    application_name: str = "steadypay"
    session_state: bool = False
    """True for a pool whose users leave session state on a connection (session advisory
    locks, LISTEN, SET, cursors): each release then runs asyncpg's full reset, one more round
    trip. Otherwise a release only rolls back a transaction left open
    (``_rollback_if_in_transaction``)."""


CONNECTION_ERRORS = (
    asyncpg.InterfaceError,
    # asyncpg's "cannot switch to state N; another operation is in progress", raised by a
    # connection the server dropped mid-conversation (a terminated backend, a restart)
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
"""The driver's and the network's ways of saying the connection is gone or unusable."""
DRIVER_ERRORS = (asyncpg.PostgresError, *CONNECTION_ERRORS)


def translate(exc: BaseException) -> BaseException:
    """Our error for a driver/network exception, or ``exc`` itself if it is not one of those."""
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate in _CONFLICT_SQLSTATES:
        return TransactionConflict(f"transaction conflict ({sqlstate})")
    if sqlstate == "55P03":  # lock_not_available: a row stayed locked past lock_timeout
        return LedgerContention()
    if (
        sqlstate in _UNAVAILABLE_SQLSTATES
        or (isinstance(sqlstate, str) and sqlstate.startswith("08"))  # connection_exception
        or isinstance(exc, CONNECTION_ERRORS)
    ):
        return DatabaseUnavailable()
    return exc


def service_of(application_name: str) -> str:
    """The ``service`` label of a pool's metrics: ``steadypay`` (the API's pool) is ``api``,
    ``steadypay-fraud`` is ``fraud``, ``steadypay-outbox-relay`` is ``outbox-relay``."""
    if application_name == "steadypay":
        return "api"
    return application_name.removeprefix("steadypay-")


class Database:
    """A pool plus deadlines: acquiring waits at most ``acquire_timeout_s``. Also the
    :class:`~steadypay.db.router.DatabaseRouter` of a single server (``writer()`` and
    ``reader()`` are this pool).

    It also keeps ``steadypay_db_pool_connections{service,state}`` current: ``in_use`` and
    ``idle`` from the pool, ``waiting`` counted here (callers inside ``acquire``, blocked for a
    free connection or one being opened). The gauges follow acquires and releases (at most
    every ``PUBLISH_EVERY_S``, settling on the last state), summed over this process's open
    pools of the same service (tests open several)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        acquire_timeout_s: float,
        service: str = "api",
        faults: FaultHook = NO_FAULTS,
    ) -> None:
        self._pool = pool
        self._faults = faults
        self._acquire_timeout_s = acquire_timeout_s
        self.service = service
        self.waiting = 0
        _open_pools.setdefault(service, weakref.WeakSet()).add(self)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    # --- DatabaseRouter: one pool serves writes and reads of every consistency ----------

    def writer(self) -> Database:
        return self

    def reader(self, consistency: Consistency = Consistency.STRONG) -> Database:
        return self

    async def position(self) -> int | None:
        return None  # one server: every read sees every write

    async def expire_connections(self) -> None:
        """Reconnect each connection at its next use (after a failover: an idle connection may
        still point at the old primary, now a standby)."""
        await self._pool.expire_connections()

    def pool_stats(self) -> PoolStats:
        """This pool's connections now (all zero once closed)."""
        pool = self._pool
        if pool is None or pool.is_closing():
            return PoolStats(0, 0, self.waiting, 0)
        size, idle = pool.get_size(), pool.get_idle_size()
        return PoolStats(size - idle, idle, self.waiting, pool.get_max_size())

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        await self._faults.inject("database", self.service)  # chaos, when switched on
        try:
            self.waiting += 1
            acquired = False
            try:
                async with self._pool.acquire(timeout=self._acquire_timeout_s) as proxy:
                    self.waiting -= 1
                    acquired = True
                    publish_pool_stats(self.service)
                    # The pool hands out a proxy that forwards everything to the connection.
                    yield cast(asyncpg.Connection, proxy)
            finally:
                if not acquired:
                    self.waiting -= 1
                publish_pool_stats(self.service)
        except DRIVER_ERRORS as exc:
            translated = translate(exc)
            if translated is exc:
                raise
            if getattr(exc, "sqlstate", None) == "25006":  # a standby now: reconnect them all
                await self.expire_connections()
            raise translated from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def close(self) -> None:
        try:
            await self._pool.close()
        finally:
            _open_pools.get(self.service, weakref.WeakSet()).discard(self)
            publish_pool_stats(self.service, now=True)


@dataclass(frozen=True, slots=True)
class PoolStats:
    in_use: int
    idle: int
    waiting: int
    max_size: int


_open_pools: dict[str, weakref.WeakSet[Database]] = {}
_gauges: dict[str, tuple[Gauge, Gauge, Gauge, Gauge]] = {}


PUBLISH_EVERY_S = 0.25
"""The pool gauges are set at most this often per service (and once more this long after the
last change): reading an asyncpg pool's size walks all its connection holders, which cost 8%
of an API worker's CPU when done on every acquire and release (issue 7's profile)."""
_published_at: dict[str, float] = {}
_deferred: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle]] = {}


def publish_pool_stats(service: str, *, now: bool = False) -> None:
    """Set the pool gauges of ``service`` to the sum over this process's open pools: at once
    if ``now`` or if they were last set more than ``PUBLISH_EVERY_S`` ago, else once that much
    time has passed (so the gauges settle on the last state, e.g. idle after a burst)."""
    clock = time.monotonic()
    last = _published_at.get(service)
    if not now and last is not None and clock - last < PUBLISH_EVERY_S:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        pending = _deferred.get(service)
        if pending is None or pending[0] is not loop:  # none yet, or one of a loop now gone
            handle = loop.call_later(PUBLISH_EVERY_S - (clock - last), _publish_deferred, service)
            _deferred[service] = (loop, handle)
        return
    _published_at[service] = clock
    stats = pool_totals(service)
    gauges = _gauges.get(service)
    if gauges is None:  # labels() takes a lock and a lookup: once per service, not per call
        gauges = _gauges[service] = (
            DB_POOL_CONNECTIONS.labels(service, "in_use"),
            DB_POOL_CONNECTIONS.labels(service, "idle"),
            DB_POOL_CONNECTIONS.labels(service, "waiting"),
            DB_POOL_SIZE_MAX.labels(service),
        )
    values = (stats.in_use, stats.idle, stats.waiting, stats.max_size)
    for gauge, value in zip(gauges, values, strict=True):
        gauge.set(value)


def _publish_deferred(service: str) -> None:
    _deferred.pop(service, None)
    publish_pool_stats(service, now=True)


def pool_totals(service: str) -> PoolStats:
    """The sum of this process's open pools of ``service``."""
    in_use = idle = waiting = max_size = 0
    for db in list(_open_pools.get(service, ())):
        stats = db.pool_stats()
        in_use += stats.in_use
        idle += stats.idle
        waiting += stats.waiting
        max_size += stats.max_size
    return PoolStats(in_use, idle, waiting, max_size)


async def _rollback_if_in_transaction(conn: asyncpg.Connection) -> None:
    """What a release must do when the pool's users keep no session state: end a transaction
    left open. asyncpg's default reset also sends ``SELECT pg_advisory_unlock_all(); CLOSE
    ALL; UNLISTEN *; RESET ALL`` on every release: one more round trip per connection use.
    Ledger, fraud, notification and relay code takes only transaction-scoped locks and
    ``SET LOCAL`` settings, which end with the transaction."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_database(
    dsn: str, options: PoolOptions, faults: FaultHook = NO_FAULTS
) -> Database:
    """Open the pool. Fails fast with DatabaseUnavailable if the server cannot be reached.
    ``faults`` is called before each acquire (the process's fault injector, if any)."""
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=options.min_size,
            max_size=options.max_size,
            timeout=options.connect_timeout_s,
            command_timeout=options.statement_timeout_ms / 1000 + 1,
            max_inactive_connection_lifetime=300,
            reset=None if options.session_state else _rollback_if_in_transaction,
            server_settings={
                "application_name": options.application_name,
                "statement_timeout": str(options.statement_timeout_ms),
                "lock_timeout": str(options.lock_timeout_ms),
                "idle_in_transaction_session_timeout": "60000",
                "timezone": "UTC",
            },
        )
    except DRIVER_ERRORS as exc:
        translated = translate(exc)
        if translated is exc:
            raise
        raise translated from exc
    db = Database(pool, options.acquire_timeout_s, service_of(options.application_name), faults)
    publish_pool_stats(db.service, now=True)
    return db
