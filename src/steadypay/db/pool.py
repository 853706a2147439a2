"""The PostgreSQL connection pool and the translation of driver errors into ours.

Every asyncpg error that can reach our code through :meth:`Database.connection` leaves it as a
:class:`~steadypay.errors.SteadypayError`: connection trouble and timeouts become
``DatabaseUnavailable`` (503), deadlocks and serialization failures ``TransactionConflict``
(retried by the ledger). Anything else is a bug and propagates as is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

import asyncpg

from steadypay.errors import DatabaseUnavailable, LedgerContention, TransactionConflict

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
        or isinstance(exc, asyncpg.exceptions.InterfaceError | OSError | TimeoutError)
    ):
        return DatabaseUnavailable()
    return exc


class Database:
    """A pool plus deadlines: acquiring waits at most ``acquire_timeout_s``."""

    def __init__(self, pool: asyncpg.Pool, acquire_timeout_s: float) -> None:
        self._pool = pool
        self._acquire_timeout_s = acquire_timeout_s

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self._pool.acquire(timeout=self._acquire_timeout_s) as proxy:
                # The pool hands out a proxy that forwards everything to the connection.
                yield cast(asyncpg.Connection, proxy)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            translated = translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def ping(self, timeout_s: float = 1.0) -> bool:
        try:
            async with asyncio.timeout(timeout_s), self.connection() as conn:
                return bool(await conn.fetchval("SELECT 1", timeout=timeout_s) == 1)
        except (DatabaseUnavailable, TimeoutError):
            return False

    async def close(self) -> None:
        await self._pool.close()


async def create_database(dsn: str, options: PoolOptions) -> Database:
    """Open the pool. Fails fast with DatabaseUnavailable if the server cannot be reached."""
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=options.min_size,
            max_size=options.max_size,
            timeout=options.connect_timeout_s,
            command_timeout=options.statement_timeout_ms / 1000 + 1,
            max_inactive_connection_lifetime=300,
            server_settings={
                "application_name": options.application_name,
                "statement_timeout": str(options.statement_timeout_ms),
                "lock_timeout": str(options.lock_timeout_ms),
                "idle_in_transaction_session_timeout": "60000",
                "timezone": "UTC",
            },
        )
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        translated = translate(exc)
        if translated is exc:
            raise
        raise translated from exc
    return Database(pool, options.acquire_timeout_s)
