"""The abuse run of issue 14: 1,000 requests with random bearer keys against a steadypay of its
own (two API workers, Redis, the fraud and notification services, all on loopback), while
normal users make transfers with their own keys from the same address.

Prints, per phase: the normal users' transfers/s, the attacker's answers (401, 429), and how
many unknown bearer keys PostgreSQL was asked about: its own count of scans of ``admin_keys``
(a lookup reaches that second branch of its UNION only when no user has the key; the run uses
no named operator key). Phases
alternate quiet / under attack, twice, so the noise between two quiet phases is visible next
to the attack's effect.

    .venv/bin/python benchmarks/abuse.py [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from steadypay.chaos.environment import ChaosEnvironment, EnvironmentOptions

USERS = 8
PHASE_S = 8.0
BAD_KEYS = 1000
ATTACKERS = 10


def metric(text: str, name: str, labels: dict[str, str]) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def key_index_scans(database_url: str) -> int:
    """Lookups of a key no user has: they alone scan ``admin_keys`` (the UNION's second branch
    runs only when the first found nobody). PostgreSQL's own count, summed over every worker
    (this environment's ``/metrics`` is one worker's)."""
    await asyncio.sleep(11)  # an idle backend flushes its statistics within 10 s (PG 15+)
    conn = await asyncpg.connect(database_url)
    try:
        scans = await conn.fetchval(
            "SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
            "WHERE relname = 'admin_keys'"
        )
    finally:
        await conn.close()
    return int(scans or 0)


async def counters(http: httpx.AsyncClient, database_url: str) -> dict[str, float]:
    text = (await http.get("/metrics")).text
    return {
        "index_scans": await key_index_scans(database_url),
        # one worker's view: this environment's API is not in multiprocess mode
        "rate_limited": metric(text, "steadypay_rate_limited_total", {"limit": "auth_failures"}),
    }


async def setup(http: httpx.AsyncClient, admin: dict[str, str]) -> list[tuple[str, str, str]]:
    """USERS users, each with a funded wallet; returns (key, wallet, next user's wallet)."""
    made = []
    for i in range(USERS):
        email = f"abuse{i}-{secrets.token_hex(4)}@example.com"
        r = await http.post("/v1/users", json={"name": f"user {i}", "email": email}, headers=admin)
        r.raise_for_status()
        user = r.json()
        w = await http.post(
            "/v1/wallets", json={"user_id": user["id"], "currency": "USD"}, headers=admin
        )
        w.raise_for_status()
        d = await http.post(
            "/v1/deposits",
            json={"wallet_id": w.json()["id"], "amount": "1000.00", "currency": "USD"},
            headers=admin | {"Idempotency-Key": str(uuid.uuid4())},
        )
        d.raise_for_status()
        made.append((user["api_key"], w.json()["id"]))
    return [(key, wallet, made[(i + 1) % USERS][1]) for i, (key, wallet) in enumerate(made)]


async def normal_user(
    http: httpx.AsyncClient, key: str, wallet: str, payee: str, until: float
) -> Counter[int]:
    statuses: Counter[int] = Counter()
    headers = {"Authorization": f"Bearer {key}"}
    while time.monotonic() < until:
        r = await http.post(
            "/v1/transfers",
            json={
                "from_wallet_id": wallet,
                "to_wallet_id": payee,
                "amount": "0.01",
                "currency": "USD",
            },
            headers=headers | {"Idempotency-Key": str(uuid.uuid4())},
        )
        statuses[r.status_code] += 1
    return statuses


async def attacker(http: httpx.AsyncClient, count: int) -> Counter[int]:
    statuses: Counter[int] = Counter()
    for _ in range(count):
        key = "sp_" + secrets.token_urlsafe(32)
        r = await http.get("/v1/transfers", headers={"Authorization": f"Bearer {key}"})
        statuses[r.status_code] += 1
    return statuses


def attack_process(api_url: str) -> tuple[dict[int, int], float, float]:
    """The attacker, in a process of its own (its client's CPU is not the normal users'):
    its answers, how long it took, and the CPU it used (on the same machine)."""

    async def run() -> Counter[int]:
        async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
            total: Counter[int] = Counter()
            for part in await asyncio.gather(
                *(attacker(http, BAD_KEYS // ATTACKERS) for _ in range(ATTACKERS))
            ):
                total += part
            return total

    started, cpu = time.monotonic(), time.process_time()
    answers = asyncio.run(run())
    return dict(answers), time.monotonic() - started, time.process_time() - cpu


def cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


async def phase(
    http: httpx.AsyncClient,
    env: ChaosEnvironment,
    users: list[tuple[str, str, str]],
    attack: bool,
    pool: ProcessPoolExecutor,
) -> dict[str, Any]:
    database_url = env.direct_database_url
    before = await counters(http, database_url)
    workers = env.worker_pids("api")
    cpu_before = cpu_s(workers)
    started = time.monotonic()
    until = started + PHASE_S
    normal = [asyncio.create_task(normal_user(http, *u, until)) for u in users]
    loop = asyncio.get_running_loop()
    attack_answers: dict[int, int] = {}
    attack_s = attacker_cpu_s = 0.0
    if attack:
        attack_answers, attack_s, attacker_cpu_s = await loop.run_in_executor(
            pool, attack_process, env.api_url
        )
    normal_answers: Counter[int] = Counter()
    for task in normal:
        normal_answers += await task
    elapsed = time.monotonic() - started
    api_cpu = cpu_s(workers) - cpu_before
    after = await counters(http, database_url)
    return {
        "phase": "under attack" if attack else "quiet",
        "transfers_per_s": round(normal_answers[201] / elapsed, 1),
        "normal_answers": dict(normal_answers),
        "attack_answers": dict(attack_answers),
        "attack_duration_s": round(attack_s, 2),
        "api_cpu_s": round(api_cpu, 3),
        "attacker_cpu_s": round(attacker_cpu_s, 3),
        "unknown_key_lookups": after["index_scans"] - before["index_scans"],
        "refused_429_one_worker": after["rate_limited"] - before["rate_limited"],
    }


REFUSED_ALONE = 2000


async def refused_alone_cost(http: httpx.AsyncClient, env: ChaosEnvironment) -> dict[str, float]:
    """API CPU per request of a burst with nothing else running: unknown keys from an address
    that is already blocked, then ``/health/live`` (the cheapest route) for comparison."""
    workers = env.worker_pids("api")

    async def burst(headers: bool, path: str) -> float:
        async def client(count: int) -> None:
            for _ in range(count):
                key = "sp_" + secrets.token_urlsafe(32)
                auth = {"Authorization": f"Bearer {key}"} if headers else {}
                await http.get(path, headers=auth)

        before = cpu_s(workers)
        await asyncio.gather(*(client(REFUSED_ALONE // ATTACKERS) for _ in range(ATTACKERS)))
        return round(1000 * (cpu_s(workers) - before) / REFUSED_ALONE, 3)

    return {
        "api_cpu_ms_per_request": await burst(True, "/v1/transfers"),
        "health_cpu_ms_per_request": await burst(False, "/health/live"),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="steadypay-abuse-") as tmp:
        env = ChaosEnvironment(EnvironmentOptions(data_dir=Path(tmp), proxies=False))
        with env:
            console.print("[dim]starting steadypay (2 API workers, Redis, fraud, notifications)[/]")
            env.wait_ready(120)

            async def run() -> tuple[list[dict[str, Any]], dict[str, float]]:
                admin = {"Authorization": f"Bearer {env.admin_key}"}
                limits = httpx.Limits(max_connections=64)
                async with httpx.AsyncClient(
                    base_url=env.api_url, timeout=30, limits=limits
                ) as http:
                    users = await setup(http, admin)
                    results = []
                    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                        for attack in (False, True, False, True):
                            name = "under attack" if attack else "quiet"
                            console.print(f"[dim]phase: {name}[/]")
                            results.append(await phase(http, env, users, attack, pool))
                    alone = await refused_alone_cost(http, env)
                    return results, alone

            phases, refused_alone = asyncio.run(run())
    table = Table(title=f"abuse run: {BAD_KEYS} random bearer keys per attack phase, {USERS} users")
    for column in ("phase", "transfers/s", "normal non-201", "attacker 401", "attacker 429",
                   "unknown-key lookups", "attack took s", "API CPU s",
                   "attacker CPU s"):  # fmt: skip
        table.add_column(column)
    for p in phases:
        non_201 = sum(n for s, n in p["normal_answers"].items() if s != 201)
        table.add_row(
            p["phase"],
            str(p["transfers_per_s"]),
            str(non_201),
            str(p["attack_answers"].get(401, 0)),
            str(p["attack_answers"].get(429, 0)),
            str(p["unknown_key_lookups"]),
            str(p["attack_duration_s"]),
            str(p["api_cpu_s"]),
            str(p["attacker_cpu_s"]),
        )
    console.print(table)
    console.print(
        f"API CPU per refused request, measured alone ({REFUSED_ALONE} requests from a "
        f"blocked address, no other traffic): {refused_alone['api_cpu_ms_per_request']} ms; "
        f"per GET /health/live the same way: {refused_alone['health_cpu_ms_per_request']} ms"
    )
    if args.json:
        args.json.write_text(json.dumps({"phases": phases, "alone": refused_alone}, indent=2))
    attacks = [p for p in phases if p["phase"] == "under attack"]
    other = sum(sum(p["attack_answers"].get(s, 0) for s in (401, 429)) for p in attacks)
    ok = other == BAD_KEYS * len(attacks) and all(set(p["normal_answers"]) <= {201} for p in phases)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
