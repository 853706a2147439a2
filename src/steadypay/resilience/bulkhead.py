"""A bulkhead: at most K calls in flight to a dependency, a bounded wait, then rejection.

Excess load is shed fast with :class:`BulkheadFullError` rather than queued without bound, so a
slow dependency cannot take every connection and coroutine of the process with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from steadypay.errors import BulkheadFullError


class Bulkhead:
    def __init__(self, dependency: str, max_concurrent: int, max_waiting: int | None = None):
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.dependency = dependency
        self.max_concurrent = max_concurrent
        self.max_waiting = max_concurrent if max_waiting is None else max_waiting
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self._waiting = 0

    @property
    def in_flight(self) -> int:
        return self.max_concurrent - self._semaphore._value

    @asynccontextmanager
    async def slot(self, max_wait_s: float) -> AsyncIterator[None]:
        if self._semaphore.locked():
            if max_wait_s <= 0 or self._waiting >= self.max_waiting:
                raise BulkheadFullError(dependency=self.dependency, retry_after_s=1.0)
            self._waiting += 1
            try:
                async with asyncio.timeout(max_wait_s):
                    await self._semaphore.acquire()
            except TimeoutError:
                raise BulkheadFullError(dependency=self.dependency, retry_after_s=1.0) from None
            finally:
                self._waiting -= 1
        else:
            await self._semaphore.acquire()
        try:
            yield
        finally:
            self._semaphore.release()
