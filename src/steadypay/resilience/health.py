"""Readiness probes of the dependencies' circuits (``<dependency>:circuit``)."""

from __future__ import annotations

from steadypay.observability.health import Check, Probe, Status
from steadypay.resilience.client import ReliableServiceClient
from steadypay.resilience.registry import HEALTHY, Dependencies


def circuit_probes(dependencies: Dependencies) -> list[Probe]:
    """``<dependency>:circuit`` for each configured dependency: the breaker's state as this
    process sees it (shared through Redis when configured). Not closed: ``warn``, or ``fail``
    for a dependency configured as critical."""
    return [
        _circuit_probe(name, client, name in dependencies.critical)
        for name, client in sorted(dependencies.clients.items())
    ]


def _circuit_probe(name: str, client: ReliableServiceClient, critical: bool) -> Probe:
    key = f"{name}:circuit"

    async def run() -> list[Check]:
        snapshot = await client.pipeline.breaker.snapshot()
        state = snapshot.state.name.lower()
        if snapshot.state in HEALTHY:
            return [Check(key, "component", Status.PASS, state)]
        output = f"circuit {state}"
        if snapshot.retry_after_s is not None:
            output += f"; next trial call in {snapshot.retry_after_s:.1f} s"
        if critical:
            output += " (critical dependency)"
        status = Status.FAIL if critical else Status.WARN
        return [Check(key, "component", status, state, output=output)]

    return Probe(key, "component", critical, run)
