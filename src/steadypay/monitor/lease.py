"""The leader lease: a PostgreSQL session-level advisory lock held on a dedicated connection.

Only the monitor holding the lock acts on a failover decision; the others record their rounds
as followers. PostgreSQL releases the lock when the holder's session ends (process killed,
connection dropped, backend terminated), and the next follower to try takes it over.

:meth:`LeaderLease.refresh` runs once per round:

- holding the lock: ``SELECT 1`` on the lease connection proves the session (and the lock)
  still exists; if that fails the connection is dropped and the lock is sought again;
- not holding it: reconnect if needed and ``pg_try_advisory_lock`` (never waits);
- **database unreachable:** a monitor that was leader stays leader ("unverified"). While the
  database is down nobody can take the lock, and a database outage is exactly when a failover
  is wanted. The one case where two monitors may both act is a partition in which the leader
  cannot reach the database but another monitor can; the failover gate in the database
  (:func:`steadypay.monitor.repository.open_failover`) stops the second whenever it can reach
  the database, and the failover action itself must be safe to run twice (docs/monitor.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import asyncpg
import structlog

from steadypay.db.pool import DRIVER_ERRORS

log = structlog.get_logger(__name__)

LEADER_LOCK_KEY = 0x5354_4D4F_4E4C_4452  # "STMONLDR"


@dataclass(frozen=True, slots=True)
class LeaseState:
    leader: bool
    verified: bool  # False: the database could not be reached to confirm it


class LeaderLease:
    def __init__(
        self,
        dsn: str,
        *,
        timeout_s: float = 5.0,
        key: int = LEADER_LOCK_KEY,
        application_name: str = "steadypay-monitor-lease",
    ) -> None:
        self._dsn = dsn
        self._timeout_s = timeout_s
        self._key = key
        self._application_name = application_name
        self._conn: asyncpg.Connection | None = None
        self._held = False

    @property
    def backend_pid(self) -> int | None:
        """The lease connection's server process (tests terminate it to simulate a drop)."""
        return self._conn.get_server_pid() if self._conn is not None else None

    async def refresh(self) -> LeaseState:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._refresh()
        except DRIVER_ERRORS as exc:
            await self._drop()
            if self._held:
                log.warning("monitor_lease_unverified", error=type(exc).__name__)
            return LeaseState(leader=self._held, verified=False)

    async def _refresh(self) -> LeaseState:
        if self._conn is not None and self._held:
            try:
                await self._conn.fetchval("SELECT 1")
                return LeaseState(leader=True, verified=True)
            except DRIVER_ERRORS:
                await self._drop()  # the session, and with it the lock, is gone
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self._dsn,
                timeout=self._timeout_s,
                server_settings={"application_name": self._application_name},
            )
        was_leader = self._held
        self._held = bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key))
        if self._held != was_leader:
            log.info("monitor_leadership_changed", leader=self._held)
        return LeaseState(leader=self._held, verified=True)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()

    async def release(self) -> None:
        """Give up the lease (closing the session releases the lock)."""
        conn, self._conn = self._conn, None
        self._held = False
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), timeout=self._timeout_s)
            except DRIVER_ERRORS:
                conn.terminate()
