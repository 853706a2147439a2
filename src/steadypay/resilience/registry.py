"""Every configured dependency's client and pipeline, built once by the composition root."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from steadypay.resilience.client import ReliableServiceClient
from steadypay.resilience.store import State

HEALTHY = (State.CLOSED, State.DISABLED)


@dataclass(slots=True)
class Dependencies:
    clients: dict[str, ReliableServiceClient]
    critical: frozenset[str]
    redis: Redis | None = None
    """The client shared by the breakers' RedisStores, if any; closed with the clients."""

    def __getitem__(self, name: str) -> ReliableServiceClient:
        return self.clients[name]

    async def health(self) -> tuple[bool, Mapping[str, dict[str, Any]]]:
        """(ready?, per-dependency report). A non-critical dependency whose circuit is not
        closed is a warning; a critical one makes the service not ready."""
        ready = True
        report: dict[str, dict[str, Any]] = {}
        for name, client in sorted(self.clients.items()):
            snapshot = await client.pipeline.breaker.snapshot()
            healthy = snapshot.state in HEALTHY
            critical = name in self.critical
            if not healthy and critical:
                ready = False
            report[name] = {
                "status": "ok" if healthy else ("fail" if critical else "warn"),
                "circuit": snapshot.state.name.lower(),
                "critical": critical,
                "retry_after_s": snapshot.retry_after_s,
                "retry_budget_tokens": client.pipeline.budget.tokens,
            }
        return ready, report

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        if self.redis is not None:
            await self.redis.aclose()
