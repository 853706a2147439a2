"""The database seam: every read and write asks for the pool it needs.

A :class:`DatabaseRouter` answers two questions. ``writer()``: where do writes (and reads
that decide a write) go — the primary, always. ``reader(consistency)``: where may this read
go. With :attr:`Consistency.STRONG` (the default) it must see every write committed before it
started — the primary, or a replica proven to have replayed that far; with
:attr:`Consistency.BOUNDED` a replica whose replication lag is within the router's bound may
answer (dashboards, admin lists, SLO windows), and the primary does when none is.

Today one pool answers both (:class:`~steadypay.db.pool.Database` is a router of one member);
the HA work adds a router over a primary and replicas behind the same two methods, so no
service or route changes when it does. Nobody outside ``steadypay.db`` and the composition
roots holds a raw ``asyncpg`` pool.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from steadypay.db.pool import Database, PoolStats


class Consistency(StrEnum):
    STRONG = "strong"
    """Sees every write committed before the read began: balances, authorisation, money."""
    BOUNDED = "bounded"
    """May lag the primary by at most the router's bound: lists, dashboards, reports."""


class DatabaseRouter(Protocol):
    """Chooses the pool for each unit of work."""

    @property
    def service(self) -> str:
        """The ``service`` label of this process's pools (``api``, ``fraud``, ...)."""
        ...

    def writer(self) -> Database:
        """The pool of the primary: every write, and every read that a write depends on."""
        ...

    def reader(self, consistency: Consistency = Consistency.STRONG) -> Database:
        """A pool that can serve a read of this consistency."""
        ...

    def pool_stats(self) -> PoolStats: ...

    async def close(self) -> None: ...
