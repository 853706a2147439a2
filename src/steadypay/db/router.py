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

from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from contextvars import ContextVar
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import asyncpg

    from steadypay.db.pool import PoolStats


class Consistency(StrEnum):
    STRONG = "strong"
    """Sees every write committed before the read began: balances, authorisation, money."""
    BOUNDED = "bounded"
    """May lag the primary by at most the router's bound: lists, dashboards, reports."""


class Pool(Protocol):
    """Connections to one server (or, for the writer, to whichever server is the primary)."""

    def connection(self) -> AbstractAsyncContextManager[asyncpg.Connection]: ...

    def transaction(self) -> AbstractAsyncContextManager[asyncpg.Connection]: ...


class DatabaseRouter(Protocol):
    """Chooses the pool for each unit of work."""

    @property
    def service(self) -> str:
        """The ``service`` label of this process's pools (``api``, ``fraud``, ...)."""
        ...

    def writer(self) -> Pool:
        """The pool of the primary: every write, and every read that a write depends on."""
        ...

    def reader(self, consistency: Consistency = Consistency.STRONG) -> Pool:
        """A pool that can serve a read of this consistency (and, for a ``BOUNDED`` read, has
        replayed past the request's :func:`read_after` position, if it presented one)."""
        ...

    async def position(self) -> int | None:
        """The primary's WAL position now, as a read-your-writes token; None when no read can
        be stale (there are no replicas), so no token is needed."""
        ...

    def pool_stats(self) -> PoolStats: ...

    async def close(self) -> None: ...


# --- read-your-writes: a request's position in the primary's WAL ----------------------------

CONSISTENCY_TOKEN_HEADER = "Steadypay-Consistency-Token"  # noqa: S105 (a header name)
"""Answered on every write (the primary's WAL position once the write committed); a read that
sends it back is served only by a server that has replayed that far."""

_read_after: ContextVar[int | None] = ContextVar("steadypay_read_after", default=None)


def read_after_lsn() -> int | None:
    """The WAL position the current request's reads must have seen, if it presented one."""
    return _read_after.get()


@contextmanager
def reading_after(lsn: int | None) -> Iterator[None]:
    """Within this block, ``BOUNDED`` reads see at least everything up to ``lsn``."""
    token = _read_after.set(lsn)
    try:
        yield
    finally:
        _read_after.reset(token)


def parse_lsn(text: str) -> int:
    """``16/B374D848`` (PostgreSQL's ``pg_lsn``) as an integer; ValueError if it is not one."""
    high, sep, low = text.strip().partition("/")
    if not sep or not high or not low or len(high) > 8 or len(low) > 8:
        raise ValueError(f"not a WAL position: {text!r}")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"
