"""Group commit: concurrent calls to the ledger share one transaction.

Every money-moving request of a worker ends in ``Ledger.execute([request])``. Alone, each is a
transaction of its own: a round of lock, insert, update and commit (an fsync) per transfer.
:class:`GroupCommit` queues the calls and runs them as batches through the ledger's batch
primitive, which gives each request exactly the outcome sequential execution in queue order
would (``apply_batch``; a hypothesis test holds it to that), claims every idempotency key, and
commits them all at once. Nothing is answered before the commit that holds it is durable.

There is no timer. A batch starts as soon as fewer than ``max_in_flight`` transactions are
running, with everything queued so far (at most ``max_batch`` requests): at low load a request
runs at once, alone, with no added latency; under load, requests queue while the transactions
ahead of them commit, and the next batch takes them all. This is the shape of PostgreSQL's own
group commit of WAL flushes, and of TigerBeetle's batching, without a window to tune.

A batch that fails as a whole (the database unavailable, contention beyond the retry budget)
fails every request in it, each of which is safe to retry with its key. One failure belongs to
a single request: its idempotency key held elsewhere past the lock timeout
(``IdempotencyKeyInUse``); then the batch's requests run again one call at a time, so that only
that one gets the 409.

A batch belongs to no one request, so it runs in a context of its own (empty: no request id in
its logs, no caller's deadline), never in that of the call that happened to start it. Nothing
done inside it may read per-request context; what it needs from a request, such as the request
id in a stored error response, comes bound into the request (``steadypay.ledger.service.Renderer``).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import Histogram

from steadypay.errors import IdempotencyKeyInUse

Request = TypeVar("Request")
Result = TypeVar("Result")

BATCH_SIZE = Histogram(
    "steadypay_ledger_batch_size",
    "Requests committed together in one ledger transaction (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 8192),
)


@dataclass(slots=True)
class GroupStats:
    submissions: int = 0
    batches: int = 0
    isolated: int = 0
    """batches re-run call by call because one request's key was held elsewhere"""


class GroupCommit(Generic[Request, Result]):
    def __init__(
        self,
        execute: Callable[[Sequence[Request]], Awaitable[list[Result]]],
        *,
        max_in_flight: int,
        max_batch: int,
    ) -> None:
        if max_in_flight < 1 or max_batch < 1:
            raise ValueError("max_in_flight and max_batch must be at least 1")
        self._execute = execute
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch
        self._queue: deque[tuple[Sequence[Request], asyncio.Future[list[Result]]]] = deque()
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = GroupStats()

    async def submit(self, requests: Sequence[Request]) -> list[Result]:
        """The outcomes of ``requests``, once the transaction holding them has committed."""
        if not requests:
            return []
        future: asyncio.Future[list[Result]] = asyncio.get_running_loop().create_future()
        # retrieved even if the caller is gone (no "exception never retrieved" noise)
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queue.append((requests, future))
        self.stats.submissions += 1
        self._start_batches()
        return await asyncio.shield(future)  # a cancelled caller does not cancel the batch

    def _start_batches(self) -> None:
        while self._queue and self._running < self._max_in_flight:
            batch = [self._queue.popleft()]
            size = len(batch[0][0])
            while self._queue and size + len(self._queue[0][0]) <= self._max_batch:
                submission = self._queue.popleft()
                size += len(submission[0])
                batch.append(submission)
            self._running += 1
            task = asyncio.create_task(self._run(batch), context=contextvars.Context())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(
        self, batch: list[tuple[Sequence[Request], asyncio.Future[list[Result]]]]
    ) -> None:
        try:
            flat = [request for requests, _ in batch for request in requests]
            self.stats.batches += 1
            BATCH_SIZE.observe(len(flat))
            try:
                results = await self._execute(flat)
            except IdempotencyKeyInUse:
                if len(batch) == 1:
                    raise
                self.stats.isolated += 1
                for requests, future in batch:
                    await self._settle(future, self._execute(requests))
                return
            start = 0
            for requests, future in batch:
                if not future.done():
                    future.set_result(results[start : start + len(requests)])
                start += len(requests)
        except BaseException as exc:  # every caller learns the batch's fate
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._running -= 1
            self._start_batches()

    @staticmethod
    async def _settle(
        future: asyncio.Future[list[Result]], outcome: Awaitable[list[Result]]
    ) -> None:
        try:
            result = await outcome
        except Exception as exc:  # noqa: BLE001 -- handed to the caller, who raises it
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)
