"""The pool gauges are throttled, and settle on the pool's last state after a burst."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from steadypay.db.metrics import DB_POOL_CONNECTIONS
from steadypay.db.pool import PUBLISH_EVERY_S, Database, publish_pool_stats

SERVICE = "unit-pool-gauges"


@dataclass
class PoolSizes:
    """What the gauges read of an asyncpg pool: its sizes (no connection is involved)."""

    size: int
    idle: int
    max_size: int

    def is_closing(self) -> bool:
        return False

    def get_size(self) -> int:
        return self.size

    def get_idle_size(self) -> int:
        return self.idle

    def get_max_size(self) -> int:
        return self.max_size


def in_use() -> float:
    value: float = DB_POOL_CONNECTIONS.labels(SERVICE, "in_use")._value.get()
    return value


async def test_a_burst_of_changes_is_published_once_and_settles_on_the_last_state() -> None:
    sizes = PoolSizes(size=5, idle=5, max_size=10)
    db = Database(sizes, 1.0, service=SERVICE)  # type: ignore[arg-type]
    publish_pool_stats(SERVICE, now=True)
    assert in_use() == 0
    sizes.idle = 2
    publish_pool_stats(SERVICE)  # within PUBLISH_EVERY_S of the last: deferred
    sizes.idle = 1
    publish_pool_stats(SERVICE)
    assert in_use() == 0
    await asyncio.sleep(PUBLISH_EVERY_S + 0.15)
    assert in_use() == 4  # the state when the deferred publish ran, not the first change
    sizes.idle = 5
    publish_pool_stats(SERVICE, now=True)
    assert in_use() == 0
    del db
