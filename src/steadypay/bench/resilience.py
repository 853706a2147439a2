"""`steadypay bench resilience`: what the resilience toolkit costs and what it saves.

1. Rejection latency: how long a call takes to fail when its circuit is open (it must not touch
   the network). Measured on the local store, and on the Redis-shared store when a Redis URL
   is given.
2. Retry amplification: 1,000 idempotent calls to a real HTTP server on loopback that answers
   503 to everything. Total attempts / calls, for the seed's policy (3 retries, no budget, no
   breaker), our retry budget alone (breaker disabled), and the full pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry

from steadypay.errors import CircuitOpenError, DependencyUnavailable
from steadypay.resilience.client import ReliableServiceClient
from steadypay.resilience.clock import SYSTEM_CLOCK
from steadypay.resilience.events import Metrics, ObservedEvents
from steadypay.resilience.pipeline import Attempt, Pipeline, PipelineConfig
from steadypay.resilience.store import BreakerConfig, BreakerStore, LocalStore


@dataclass(frozen=True, slots=True)
class RejectionFigures:
    store: str
    calls: int
    median_us: float
    p99_us: float


@dataclass(frozen=True, slots=True)
class AmplificationFigures:
    policy: str
    calls: int
    attempts: int
    amplification: float
    seconds: float


def _events() -> ObservedEvents:
    return ObservedEvents(Metrics(CollectorRegistry()))  # keep the process registry clean


async def rejection_latency(
    store_name: str, store: BreakerStore | None, calls: int
) -> RejectionFigures:
    config = PipelineConfig()
    pipeline = Pipeline("bench", config, store=store, events=_events())
    await pipeline.breaker.force_open()

    async def never(_: Attempt) -> None:
        raise AssertionError("an open circuit must not call the dependency")

    samples: list[float] = []
    for _ in range(calls):
        started = time.perf_counter()
        with contextlib.suppress(CircuitOpenError):
            await pipeline.call(never, idempotent=True)
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return RejectionFigures(
        store_name, calls, statistics.median(samples), samples[int(len(samples) * 0.99) - 1]
    )


class AlwaysDown:
    """An ASGI app answering 503 to everything, counting what reaches it."""

    def __init__(self) -> None:
        self.requests = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.requests += 1
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b"down"})


async def _serve(app: AlwaysDown) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 -- uvicorn offers no "started" event
        await asyncio.sleep(0.01)
    return server, task, f"http://127.0.0.1:{port}"


async def _drive(calls: int, concurrency: int, call: Callable[[int], Awaitable[None]]) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await call(i)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    return time.perf_counter() - started


async def retry_amplification(calls: int, concurrency: int) -> list[AmplificationFigures]:
    app = AlwaysDown()
    server, task, url = await _serve(app)
    base = PipelineConfig(total_timeout_s=5.0, attempt_timeout_s=1.0, max_attempts=4,
                          backoff_base_s=0.005, backoff_cap_s=0.05)  # fmt: skip
    disabled = BreakerConfig(failure_threshold=0, failure_rate_threshold=0,
                             slow_call_rate_threshold=0)  # fmt: skip
    policies = {
        # the seed: max_retries=3 on every call, no budget, no breaker
        "seed: 3 retries, no budget, no breaker": replace(
            base, budget_capacity=1e12, breaker=disabled
        ),
        "steadypay: retry budget only (breaker off)": replace(base, breaker=disabled),
        "steadypay: full pipeline (budget + breaker)": base,
    }
    figures = []
    try:
        for name, config in policies.items():
            before = app.requests
            pipeline = Pipeline("down", config, events=_events())
            client = ReliableServiceClient(url, pipeline)

            async def call(i: int, client: ReliableServiceClient = client) -> None:
                with contextlib.suppress(DependencyUnavailable):
                    await client.get("/check", headers={"X-Call": str(i)})

            seconds = await _drive(calls, concurrency, call)
            await client.aclose()
            attempts = app.requests - before
            figures.append(AmplificationFigures(name, calls, attempts, attempts / calls, seconds))
    finally:
        server.should_exit = True
        await task
    return figures


async def run(
    calls: int, rejections: int, concurrency: int, redis_url: str | None
) -> dict[str, Any]:
    from steadypay.resilience.redis_store import RedisStore, redis_client

    stores: list[tuple[str, BreakerStore | None]] = [("local", None)]
    redis = None
    if redis_url:
        redis = redis_client(redis_url)
        config = PipelineConfig().breaker
        stores.append(
            (
                "redis (shared)",
                RedisStore(
                    redis,
                    "bench",
                    config,
                    fallback=LocalStore(config, SYSTEM_CLOCK),
                    events=_events(),
                ),
            )
        )
    rejection = [await rejection_latency(name, store, rejections) for name, store in stores]
    for name, store in stores:
        if isinstance(store, RedisStore) and not store.shared:
            raise RuntimeError(f"{name}: Redis fell back to local state; figures would lie")
    if redis is not None:
        await redis.aclose()
    amplification = await retry_amplification(calls, concurrency)
    return {
        "rejection_latency": [asdict(r) for r in rejection],
        "retry_amplification": [asdict(a) for a in amplification],
    }
