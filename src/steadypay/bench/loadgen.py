"""The load generator of `steadypay bench payments`: K processes, each one asyncio loop with an
aiohttp client holding M keep-alive connections.

Two shapes of load:

- **closed loop** (:attr:`Load.rate` is None): M tasks per process, each sending its next
  request as soon as the previous answer arrived (C = K x M concurrent clients);
- **open loop** (:attr:`Load.rate` set): requests are *scheduled* at a constant arrival rate,
  whatever the answers do, and each latency is measured from the scheduled send time, so a
  stalled server shows up in the percentiles instead of silently slowing the client
  (no coordinated omission).

Every request carries a unique ``Idempotency-Key``. Each process reports its latencies, status
counts and the CPU seconds it used during the run (``time.process_time``), which is how the
report shows the generator is not the bottleneck. Processes are started with ``spawn`` (the
bench's own process runs threads) and start sending at the same wall-clock instant.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import aiohttp

Shape = Literal["uniform", "hot", "batch"]


@dataclass(frozen=True, slots=True)
class Load:
    url: str
    """the API's base URL"""
    admin_key: str
    wallets: tuple[str, ...]
    """funded wallet ids (strings) to pick payers and payees from"""
    shape: Shape = "uniform"
    hot_wallet: str | None = None
    """``shape="hot"``: every transfer pays this wallet"""
    batch_size: int = 100
    concurrency: int = 16
    """concurrent requests in all (closed loop) or the cap on those in flight (open loop)"""
    processes: int = 2
    duration_s: float = 10.0
    rate: float | None = None
    """requests per second in all: an open-loop run; None: closed loop"""
    amount: str = "1.00"
    currency: str = "USD"
    key_prefix: str = "bench"
    timeout_s: float = 10.0


@dataclass(slots=True)
class Part:
    """What one process measured."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    items: int = 0
    """transfers that went through: 1 per 2xx answer, or a batch's completed and held items"""
    cpu_s: float = 0.0
    wall_s: float = 0.0
    late: int = 0
    """open loop: requests that could not be sent on time (the in-flight cap was reached)"""


@dataclass(frozen=True, slots=True)
class Result:
    requests: int
    items: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[str, int]
    cpu_s: float
    """all load-generator processes' CPU seconds"""
    busiest_cpu_share: float
    """the busiest process's CPU seconds / wall seconds (1.0: it was saturated)"""
    late: int


def run(load: Load, pool: ProcessPoolExecutor, start_in_s: float = 0.5) -> Result:
    """Run ``load`` on ``pool`` (of at least ``load.processes`` workers) and merge the parts."""
    start_at = time.time() + start_in_s
    futures = [pool.submit(_process_main, load, i, start_at) for i in range(load.processes)]
    parts = [f.result(timeout=load.duration_s + start_in_s + load.timeout_s + 60) for f in futures]
    latencies = [x for p in parts for x in p.latencies_ms]
    statuses: Counter[str] = Counter()
    for p in parts:
        statuses.update(p.statuses)
    seconds = max(p.wall_s for p in parts)
    return Result(
        requests=len(latencies),
        items=sum(p.items for p in parts),
        seconds=seconds,
        latencies_ms=latencies,
        statuses=dict(statuses),
        cpu_s=sum(p.cpu_s for p in parts),
        busiest_cpu_share=max(p.cpu_s / p.wall_s if p.wall_s else 0.0 for p in parts),
        late=sum(p.late for p in parts),
    )


def pool(processes: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))


def warm(pool: ProcessPoolExecutor, processes: int) -> None:
    """Start the pool's processes (and import aiohttp in them) before the first measurement."""
    for f in [pool.submit(_noop) for _ in range(processes * 2)]:
        f.result(timeout=60)


def _noop() -> None:
    return None


def _process_main(load: Load, index: int, start_at: float) -> Part:
    try:
        import uvloop

        return uvloop.run(_process(load, index, start_at))
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.run(_process(load, index, start_at))


def _bodies(load: Load, rng: random.Random) -> Callable[[], tuple[str, bytes, int]]:
    """A function returning (path, body, items) for the next request."""
    wallets = load.wallets

    def transfer() -> dict[str, str]:
        if load.shape == "hot":
            assert load.hot_wallet is not None
            payer = rng.choice(wallets)
            return _item(payer, load.hot_wallet, load)
        payer, payee = rng.sample(wallets, 2)
        return _item(payer, payee, load)

    if load.shape == "batch":

        def batch() -> tuple[str, bytes, int]:
            items = [transfer() for _ in range(load.batch_size)]
            body = {"transfers": items, "atomic": False}
            return "/v1/transfers/batch", json.dumps(body).encode(), load.batch_size

        return batch
    return lambda: ("/v1/transfers", json.dumps(transfer()).encode(), 1)


def _count_items(answer: bytes, statuses: Counter[str]) -> int:
    """Tally a batch answer's items as ``item:<status>`` (``item:failed:<code>``); returns how
    many completed or went to review."""
    moved = 0
    try:
        items = json.loads(answer)["data"]
    except (ValueError, KeyError, TypeError):
        statuses["item:unreadable_answer"] += 1
        return 0
    for item in items:
        outcome = item["status"]
        if outcome == "failed":
            outcome += f":{(item.get('error') or {}).get('code')}"
        else:
            moved += 1
        statuses[f"item:{outcome}"] += 1
    return moved


def _item(payer: str, payee: str, load: Load) -> dict[str, str]:
    return {
        "from_wallet_id": payer,
        "to_wallet_id": payee,
        "amount": load.amount,
        "currency": load.currency,
    }


async def _process(load: Load, index: int, start_at: float) -> Part:
    rng = random.Random()  # noqa: S311 - picks wallets, not secrets
    next_body = _bodies(load, rng)
    per_process = max(
        1, load.concurrency // load.processes + (index < load.concurrency % load.processes)
    )
    part = Part()
    counter = 0
    prefix = f"{load.key_prefix}-{index}-{rng.getrandbits(48):012x}"
    headers = {"Authorization": f"Bearer {load.admin_key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=per_process, force_close=False)
    timeout = aiohttp.ClientTimeout(total=load.timeout_s)
    async with aiohttp.ClientSession(
        base_url=load.url, connector=connector, timeout=timeout, headers=headers
    ) as session:

        async def send(sent_at: float) -> None:
            nonlocal counter
            counter += 1
            path, body, items = next_body()
            key = f"{prefix}-{counter}"
            answer = b""
            try:
                async with session.post(path, data=body, headers={"Idempotency-Key": key}) as r:
                    answer = await r.read()
                    status = str(r.status)
            except TimeoutError:
                status = "timeout"
            except aiohttp.ClientError as exc:
                status = type(exc).__name__
            part.latencies_ms.append((time.perf_counter() - sent_at) * 1000)
            part.statuses[status] += 1
            if not status.startswith("2"):
                return
            if load.shape == "batch":  # count the items that moved (or were held), by outcome
                part.items += _count_items(answer, part.statuses)
            else:
                part.items += items

        await asyncio.sleep(max(0.0, start_at - time.time()))
        cpu0, t0 = time.process_time(), time.perf_counter()
        end = t0 + load.duration_s
        if load.rate is None:

            async def client() -> None:
                while time.perf_counter() < end:
                    await send(time.perf_counter())

            await asyncio.gather(*(client() for _ in range(per_process)))
        else:
            rate = load.rate / load.processes
            in_flight: set[asyncio.Task[None]] = set()
            n = 0
            while True:
                scheduled = t0 + n / rate
                if scheduled >= end:
                    break
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if len(in_flight) >= per_process:
                    part.late += 1
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                task = asyncio.create_task(send(scheduled))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                n += 1
            if in_flight:
                await asyncio.wait(in_flight)
        part.wall_s = time.perf_counter() - t0
        part.cpu_s = time.process_time() - cpu0
    return part
