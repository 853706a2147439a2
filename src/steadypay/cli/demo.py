"""`steadypay demo`: drive a running steadypay over HTTP and show what happened."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from steadypay.money import get_currency, parse_amount


class DemoError(Exception):
    pass


def _call(client: httpx.Client, method: str, path: str, key: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    if method == "POST" and path != "/v1/users" and path != "/v1/wallets":
        headers["Idempotency-Key"] = str(uuid.uuid4())
    response = client.request(method, path, headers=headers, **kwargs)
    body = response.json()
    if response.status_code >= 400 and response.status_code != 422:
        raise DemoError(f"{method} {path} -> {response.status_code}: {body}")
    return body


def run_demo(url: str, admin_key: str) -> None:
    console = Console()
    suffix = secrets.token_hex(3)
    with httpx.Client(base_url=url, timeout=10.0) as client:
        people = {}
        for name in ("alice", "bob"):
            user = _call(
                client,
                "POST",
                "/v1/users",
                admin_key,
                json={"name": name.title(), "email": f"{name}.{suffix}@example.com"},
            )
            wallet = _call(
                client,
                "POST",
                "/v1/wallets",
                admin_key,
                json={"user_id": user["id"], "currency": "USD"},
            )
            people[name] = (user, wallet)
        alice, bob = people["alice"], people["bob"]
        steps = [
            ("deposit 100.00 to Alice", "/v1/deposits", admin_key,
             {"wallet_id": alice[1]["id"], "amount": "100.00", "currency": "USD"}),
            ("Alice pays Bob 42.50", "/v1/transfers", alice[0]["api_key"],
             {"from_wallet_id": alice[1]["id"], "to_wallet_id": bob[1]["id"],
              "amount": "42.50", "currency": "USD", "description": "dinner"}),
            ("Bob pays Alice 500.00 (too much)", "/v1/transfers", bob[0]["api_key"],
             {"from_wallet_id": bob[1]["id"], "to_wallet_id": alice[1]["id"],
              "amount": "500.00", "currency": "USD"}),
            ("Bob withdraws 10.00", "/v1/withdrawals", bob[0]["api_key"],
             {"wallet_id": bob[1]["id"], "amount": "10.00", "currency": "USD"}),
        ]  # fmt: skip
        table = Table(title=f"steadypay demo against {url}")
        for column in ("step", "status", "amount", "result"):
            table.add_column(column)
        for title, path, key, body in steps:
            result = _call(client, "POST", path, key, json=body)
            if "error" in result:
                table.add_row(title, "failed", body["amount"], result["error"]["code"])
            else:
                table.add_row(title, result["status"], result["amount"], result["id"])
        console.print(table)
        balances = Table(title="balances")
        for column in ("user", "balance", "available"):
            balances.add_column(column)
        for name, (_, wallet) in people.items():
            now = _call(client, "GET", f"/v1/wallets/{wallet['id']}", admin_key)
            balances.add_row(name, now["balance"], now["available_balance"])
        console.print(balances)


@dataclass(slots=True)
class LoadReport:
    requested: int
    statuses: Counter[int]
    transport_errors: int
    elapsed_s: float
    funded_total_minor: int
    wallets_total_minor: int
    latencies_ms: list[float]
    risk_sources: Counter[str]

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    @property
    def conserved(self) -> bool:
        return self.funded_total_minor == self.wallets_total_minor


async def run_load(
    url: str, admin_key: str, *, transfers: int, wallets: int, concurrency: int
) -> LoadReport:
    """Random transfers among ``wallets`` funded wallets, ``concurrency`` at a time; then check
    over the API that the wallets still hold exactly what was deposited."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(
        base_url=url, timeout=30.0, limits=limits, headers=headers
    ) as client:

        async def post(path: str, body: dict[str, str], idem: bool = True) -> httpx.Response:
            extra = {"Idempotency-Key": str(uuid.uuid4())} if idem else {}
            return await client.post(path, json=body, headers=extra)

        ids: list[str] = []
        for i in range(wallets):
            user = (
                await post(
                    "/v1/users",
                    {"name": f"load {i}", "email": f"load-{uuid.uuid4().hex[:12]}@example.com"},
                    idem=False,
                )
            ).json()
            wallet = (
                await post("/v1/wallets", {"user_id": user["id"], "currency": "USD"}, idem=False)
            ).json()
            await post("/v1/deposits", {"wallet_id": wallet["id"], "amount": "100.00",
                                        "currency": "USD"})  # fmt: skip
            ids.append(wallet["id"])
        statuses: Counter[int] = Counter()
        sources: Counter[str] = Counter()
        latencies: list[float] = []
        errors = 0
        gate = asyncio.Semaphore(concurrency)
        rng = random.Random()  # noqa: S311 -- picks load-test pairs, not secrets

        async def one() -> None:
            nonlocal errors
            src, dst = rng.sample(ids, 2)
            amount = f"{rng.randint(1, 2500) / 100:.2f}"
            async with gate:
                try:
                    body = {"from_wallet_id": src, "to_wallet_id": dst, "amount": amount,
                            "currency": "USD"}  # fmt: skip
                    sent = time.perf_counter()
                    r = await post("/v1/transfers", body)
                    latencies.append((time.perf_counter() - sent) * 1000)
                    statuses[r.status_code] += 1
                    if r.status_code == 201:
                        risk = r.json().get("risk") or {}
                        sources[f"{risk.get('source')}/{r.json()['status']}"] += 1
                except httpx.TransportError:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(transfers)))
        elapsed = time.perf_counter() - started
        total = 0
        for wallet_id in ids:
            balance = (await client.get(f"/v1/wallets/{wallet_id}")).json()["balance"]
            total += parse_amount(balance, get_currency("USD"))
    return LoadReport(
        transfers, statuses, errors, elapsed, wallets * 10_000, total, latencies, sources
    )


def print_load(report: LoadReport) -> None:
    console = Console()
    table = Table(title="concurrent transfers")
    columns = ("requested", "201", "422", "other", "transport errors", "seconds", "per second",
               "p50 ms", "p99 ms")  # fmt: skip
    for column in columns:
        table.add_column(column)
    other = sum(n for s, n in report.statuses.items() if s not in (201, 422))
    table.add_row(
        str(report.requested),
        str(report.statuses.get(201, 0)),
        str(report.statuses.get(422, 0)),
        str(other),
        str(report.transport_errors),
        f"{report.elapsed_s:.2f}",
        f"{report.requested / report.elapsed_s:.0f}",
        f"{report.percentile(0.50):.1f}",
        f"{report.percentile(0.99):.1f}",
    )
    console.print(table)
    judged = ", ".join(f"{k}: {v}" for k, v in sorted(report.risk_sources.items()))
    console.print(f"risk source/status of the 201s: {judged}")
    verdict = "[green]conserved[/]" if report.conserved else "[red]NOT CONSERVED[/]"
    console.print(
        f"deposited {report.funded_total_minor / 100:.2f} USD, wallets hold "
        f"{report.wallets_total_minor / 100:.2f} USD: {verdict}"
    )
