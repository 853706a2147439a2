"""A transaction whose COMMIT is waited for at most a deadline, and never cancelled.

With synchronous replication (``synchronous_mode_strict``), a COMMIT returns once a standby has
the commit record. If no standby answers, it waits. Cancelling that wait is the one thing not
to do: PostgreSQL then reports the transaction committed locally — visible to everyone — though
no standby has it, and a failover would lose an acknowledged payment. So :func:`in_transaction`
runs the work and its COMMIT in a task of its own; once the COMMIT is sent, the caller waits at
most ``commit_timeout_s`` and then gets :class:`~steadypay.errors.CommitOutcomeUnknown` (503)
while the task goes on waiting, undisturbed, and releases its connection when the server
answers. A connection lost during the COMMIT is the same unknown outcome. Either way the client
learns the outcome by retrying with the same Idempotency-Key. Before the COMMIT is sent, a
cancelled caller cancels the work as before (the transaction rolls back).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import structlog

from steadypay.db.router import Pool
from steadypay.errors import CommitOutcomeUnknown, DatabaseUnavailable

log = structlog.get_logger(__name__)

T = TypeVar("T")

_pending: set[asyncio.Future[object]] = set()
"""Commits a caller stopped waiting for; kept referenced until they finish."""


async def in_transaction(
    pool: Pool,
    work: Callable[[asyncpg.Connection], Awaitable[T]],
    *,
    commit_timeout_s: float,
) -> T:
    """``work(conn)`` in one transaction on ``pool``, committed; see the module docstring."""
    committing = asyncio.Event()

    async def run() -> T:
        async with pool.transaction() as conn:
            result = await work(conn)
            committing.set()  # what follows is the COMMIT, on leaving the block
        return result

    task = asyncio.ensure_future(run())
    sent = asyncio.ensure_future(committing.wait())
    try:
        await asyncio.wait({task, sent}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        if not committing.is_set():
            task.cancel()
        raise
    finally:
        sent.cancel()
    if not task.done():
        try:
            await asyncio.wait_for(asyncio.shield(task), commit_timeout_s)
        except TimeoutError:
            _keep(task)
            log.warning("commit_outcome_unknown", waited_s=commit_timeout_s)
            raise CommitOutcomeUnknown() from None
        except asyncio.CancelledError:  # the caller gave up; the commit goes on
            _keep(task)
            raise
    try:
        return task.result()
    except DatabaseUnavailable as exc:
        if committing.is_set():
            raise CommitOutcomeUnknown() from exc
        raise


def _keep(task: asyncio.Future[T]) -> None:
    kept: asyncio.Future[object] = task  # type: ignore[assignment]
    _pending.add(kept)
    kept.add_done_callback(_forget)


def _forget(task: asyncio.Future[object]) -> None:
    _pending.discard(task)
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("unconfirmed_commit_failed", error=type(exc).__name__)
    elif not task.cancelled():
        log.info("unconfirmed_commit_finished")
