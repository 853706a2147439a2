"""The use cases behind ``/v1/admin/health``: the monitor's rounds and state, and
acknowledging a failover."""

from __future__ import annotations

from dataclasses import dataclass

from steadypay.db.router import DatabaseRouter
from steadypay.errors import NotFound
from steadypay.monitor import repository as repo

RECENT_FAILOVERS = 10


@dataclass(frozen=True, slots=True)
class HistoryPage:
    rounds: list[repo.RoundRecord]
    has_more: bool
    latest: repo.RoundRecord | None
    leader: repo.RoundRecord | None
    blocking: repo.Failover | None
    failovers: list[repo.Failover]

    @property
    def status(self) -> str:
        """``no_data``, ``healthy`` or ``failing`` (as the leader saw it, else the latest)."""
        if self.latest is None:
            return "no_data"
        return "healthy" if (self.leader or self.latest).consecutive_failures == 0 else "failing"


class MonitorHistory:
    def __init__(self, db: DatabaseRouter, cooldown_s: float) -> None:
        self._db = db
        self.cooldown_s = cooldown_s

    async def page(self, *, limit: int, starting_after: int | None) -> HistoryPage:
        rounds, has_more = await repo.rounds_page(
            self._db, limit=limit, starting_after=starting_after
        )
        latest = rounds[0] if rounds and starting_after is None else None
        latest = latest or await repo.latest_round(self._db)
        return HistoryPage(
            rounds=rounds,
            has_more=has_more,
            latest=latest,
            leader=await repo.latest_round(self._db, "leader"),
            blocking=await repo.blocking_failover(self._db, self.cooldown_s),
            failovers=await repo.recent_failovers(self._db, RECENT_FAILOVERS),
        )

    async def acknowledge(self, failover_id: int, by: str) -> repo.Failover:
        """Idempotent; NotFound for an unknown id."""
        failover = await repo.acknowledge_failover(self._db, failover_id, by)
        if failover is None:
            raise NotFound("no such failover", param="failover_id")
        return failover
