"""Read-your-writes under replication lag, as a client sees it, and the router's decisions.

:func:`read_your_writes` writes transfers between two wallets of its own (not the bank
workload's: the checker accounts for every transfer between those) and reads each one back
through ``GET /v1/transfers/{id}`` — a ``BOUNDED`` read a replica may serve — twice: with the
``Steadypay-Consistency-Token`` its write was answered, which must always find it, and
without, which may not (bounded staleness). Before and after, it reads the API's
``steadypay_db_router_decisions_total`` from ``/metrics`` (summed over the API's workers), so
the report shows where reads went and why; once the lagging replica's lag is past the bound,
none may go to it.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from steadypay.chaos.cluster import member_of
from steadypay.chaos.environment import ChaosEnvironment
from steadypay.db.router import CONSISTENCY_TOKEN_HEADER

DECISIONS = "steadypay_db_router_decisions_total"


@dataclass(slots=True)
class ReadYourWrites:
    lagging: str | None
    writes: int = 0
    write_failures: int = 0
    token_reads: int = 0
    token_reads_missed: int = 0
    tokenless_reads: int = 0
    tokenless_reads_stale: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    """``member reason`` → reads the router sent there, over the whole probe"""
    decisions_settled: dict[str, int] = field(default_factory=dict)
    """the same, counted only once the lagging replica's lag was past the bound"""
    primary: str | None = None
    violations: list[str] = field(default_factory=list)

    def details(self) -> dict[str, Any]:
        return {
            "lagging": self.lagging,
            "primary": self.primary,
            "read_your_writes": {
                "writes": self.writes,
                "write_failures": self.write_failures,
                "token_reads": self.token_reads,
                "token_reads_missed": self.token_reads_missed,
                "tokenless_reads": self.tokenless_reads,
                "tokenless_reads_stale": self.tokenless_reads_stale,
            },
            "router_decisions": self.decisions,
            "router_decisions_settled": self.decisions_settled,
        }


def router_decisions(http: httpx.Client, env: ChaosEnvironment) -> Counter[str]:
    """The API's router decisions now, ``member reason`` → count (members by name)."""
    text = http.get("/metrics").text
    ports = env.cluster().member_ports()
    proxies = env.member_proxy_ports()
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != DECISIONS or sample.labels.get("service") != "api":
                continue
            target = sample.labels["target"]
            name = target if target == "primary" else member_of(target, ports, proxies)
            counts[f"{name} {sample.labels['reason']}"] += int(sample.value)
    return counts


def read_your_writes(
    env: ChaosEnvironment, duration_s: float, *, lagging: str | None, settle_s: float = 1.5
) -> ReadYourWrites:
    result = ReadYourWrites(lagging)
    result.primary = env.primary_name()
    headers = {"Authorization": f"Bearer {env.admin_key}"}
    with httpx.Client(base_url=env.api_url, headers=headers, timeout=5) as http:
        wallets = _two_wallets(http)
        before = router_decisions(http, env)
        started = time.monotonic()
        settled: Counter[str] | None = None
        turn = 0
        while time.monotonic() - started < duration_s:
            if settled is None and time.monotonic() - started >= settle_s:
                settled = router_decisions(http, env)
            turn += 1
            source, target = wallets if turn % 2 else wallets[::-1]
            written = http.post(
                "/v1/transfers",
                json={"from_wallet_id": source, "to_wallet_id": target, "amount": "0.01",
                      "currency": "USD", "description": f"ryw:{turn}"},
                headers={"Idempotency-Key": f"ryw-{uuid.uuid4().hex}"},
            )  # fmt: skip
            if written.status_code != 201:
                result.write_failures += 1
                time.sleep(0.05)
                continue
            result.writes += 1
            transfer_id = written.json()["id"]
            token = written.headers.get(CONSISTENCY_TOKEN_HEADER)
            if token is None:
                result.violations.append(f"read_your_writes: no token on write {transfer_id}")
                continue
            with_token = http.get(
                f"/v1/transfers/{transfer_id}", headers={CONSISTENCY_TOKEN_HEADER: token}
            )
            result.token_reads += 1
            if with_token.status_code != 200 or with_token.json().get("id") != transfer_id:
                result.token_reads_missed += 1
                result.violations.append(
                    f"read_your_writes: transfer {transfer_id} read with its token "
                    f"{token}: {with_token.status_code}"
                )
            without = http.get(f"/v1/transfers/{transfer_id}")
            result.tokenless_reads += 1
            result.tokenless_reads_stale += without.status_code == 404
        after = router_decisions(http, env)
    result.decisions = _delta(after, before)
    result.decisions_settled = _delta(after, settled or after)
    if lagging is not None:
        to_lagging = sum(n for k, n in result.decisions_settled.items() if k.split()[0] == lagging)
        if to_lagging:
            result.violations.append(
                f"routing: {to_lagging} reads went to {lagging}, whose replay is paused, "
                f"after {settle_s:g} s"
            )
    replicas = {s.name for s in env.cluster_status() if s.role == "replica"} - {lagging}
    served = sum(n for k, n in result.decisions.items() if k.split()[0] in replicas)
    if result.writes and not served:
        result.violations.append(
            f"routing: no read was served by a caught-up replica ({sorted(replicas)}): "
            f"{result.decisions}"
        )
    return result


def _delta(after: Counter[str], before: Counter[str]) -> dict[str, int]:
    return {k: n for k, n in sorted((after - before).items()) if n > 0}


def _two_wallets(http: httpx.Client) -> tuple[str, str]:
    """Two funded wallets of the probe's own (each call retried with its key)."""
    run = uuid.uuid4().hex[:10]
    wallets = []
    for i in range(2):
        user = _must(http, "/v1/users", {"name": f"ryw {i}", "email": f"ryw-{run}-{i}@example.com"},
                     f"ryw-{run}-user-{i}")  # fmt: skip
        wallet = _must(http, "/v1/wallets", {"user_id": user["id"], "currency": "USD"},
                       f"ryw-{run}-wallet-{i}")  # fmt: skip
        _must(http, "/v1/deposits", {"wallet_id": wallet["id"], "amount": "100.00",
              "currency": "USD"}, f"ryw-{run}-deposit-{i}")  # fmt: skip
        wallets.append(str(wallet["id"]))
    return wallets[0], wallets[1]


def _must(http: httpx.Client, path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        try:
            response = http.post(path, json=body, headers={"Idempotency-Key": key})
            if response.status_code < 300:
                answer: dict[str, Any] = response.json()
                return answer
            if response.status_code < 500 and response.status_code not in (409, 429):
                raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"POST {path}: no definite answer within 30 s")
        time.sleep(0.2)
