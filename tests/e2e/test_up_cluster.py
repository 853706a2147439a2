"""`steadypay up --db-nodes 3` as a user starts it: three PostgreSQL members under Patroni, the
services on top, `steadypay cluster status` and `switchover` beside it, then Ctrl-C.

One `up` serves the module; the tests run in file order (the last one presses Ctrl-C) and
each can also run alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from steadypay.ha import PatroniCluster
from tests.e2e.processes import STEADYPAY, clean_env, free_port, gone_or_zombie, wait_ready
from tests.process_scan import processes_mentioning

pytestmark = pytest.mark.e2e

READY_WITHIN_S = 60.0  # the bound for `up --db-nodes 3` on this machine
MEMBER_FIELDS = {
    "name",
    "role",
    "state",
    "timeline",
    "lag_bytes",
    "synchronous",
    "postmaster_pid",
    "patroni_pid",
    "pg_port",
    "rest_port",
    "raft_port",
}


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    base: str
    data_dir: Path
    log: Path
    seconds_to_ready: float

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {(self.data_dir / 'admin.key').read_text().strip()}"}


def steadypay(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STEADYPAY, *argv],
        capture_output=True,
        text=True,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def members(data_dir: Path) -> list[dict[str, Any]]:
    result = steadypay("cluster", "status", "--json", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)["members"]
    return found


def primary_of(found: list[dict[str, Any]]) -> str:
    primaries: list[str] = [m["name"] for m in found if m["role"] == "primary"]
    assert len(primaries) == 1, found
    return primaries[0]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    data_dir = tmp_path_factory.mktemp("up-cluster")
    log = data_dir.parent / "up-cluster.log"
    port = free_port()
    argv = [
        STEADYPAY, "up", "--db-nodes", "3", "--port", str(port), "--data-dir", str(data_dir),
        "--fraud-port", str(free_port()), "--notification-port", str(free_port()),
    ]  # fmt: skip
    with log.open("w") as out:
        began = time.monotonic()
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=clean_env(STEADYPAY_MONITOR_INTERVAL_S="2"),
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/health/ready", proc, log, within_s=READY_WITHIN_S)
        yield Up(proc, base, data_dir, log, time.monotonic() - began)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if processes_mentioning(data_dir):  # a failed test must not leave members running
            PatroniCluster(data_dir / "cluster").stop(timeout=30)


class Payments:
    """Two funded wallets and transfers between them through the API."""

    def __init__(self, up: Up) -> None:
        self.up = up
        users = [
            self._post(
                "/v1/users", {"name": n, "email": f"{n}-{uuid.uuid4().hex[:8]}@example.com"}
            ).json()
            for n in ("ana", "ben")
        ]
        self.payer = {"Authorization": f"Bearer {users[0]['api_key']}"}
        self.wallets = [
            self._post("/v1/wallets", {"user_id": u["id"], "currency": "USD"}).json()["id"]
            for u in users
        ]
        deposit = {"wallet_id": self.wallets[0], "amount": "100.00", "currency": "USD"}
        self._post("/v1/deposits", deposit)

    def _post(self, path: str, body: dict[str, str]) -> httpx.Response:
        headers = self.up.admin | {"Idempotency-Key": str(uuid.uuid4())}
        r = httpx.post(f"{self.up.base}{path}", json=body, headers=headers, timeout=10)
        assert r.status_code == 201, r.text
        return r

    def transfer(self, amount: str, *, retry_for_s: float = 0.0) -> int:
        """One transfer, retried with the same Idempotency-Key (as a client does) while the
        API answers 503 for up to ``retry_for_s``; the number of attempts it took."""
        body = {
            "from_wallet_id": self.wallets[0],
            "to_wallet_id": self.wallets[1],
            "amount": amount,
            "currency": "USD",
        }
        headers = self.payer | {"Idempotency-Key": str(uuid.uuid4())}
        deadline = time.monotonic() + retry_for_s
        attempts = 0
        while True:
            attempts += 1
            try:
                r = httpx.post(
                    f"{self.up.base}/v1/transfers", json=body, headers=headers, timeout=10
                )
            except httpx.TransportError:
                r = None
            if r is not None and r.status_code == 201:
                return attempts
            assert r is None or r.status_code == 503, r.text
            assert time.monotonic() < deadline, f"no 201 after {attempts} attempts: {r and r.text}"
            time.sleep(0.2)

    def balance(self, wallet: int) -> str:
        r = httpx.get(
            f"{self.up.base}/v1/wallets/{self.wallets[wallet]}", headers=self.up.admin, timeout=10
        )
        assert r.status_code == 200, r.text
        balance: str = r.json()["balance"]
        return balance


@pytest.fixture(scope="module")
def payments(up: Up) -> Payments:
    return Payments(up)


def test_ready_within_a_minute_with_one_primary_and_two_synchronous_replicas(
    up: Up, record_property: Callable[[str, object], None]
) -> None:
    record_property("seconds_to_ready", round(up.seconds_to_ready, 1))
    print(f"\n`steadypay up --db-nodes 3`: /health/ready 200 after {up.seconds_to_ready:.1f} s")
    assert up.seconds_to_ready < READY_WITHIN_S
    found = members(up.data_dir)
    assert len(found) == 3
    assert all(set(m) == MEMBER_FIELDS for m in found), found
    assert sorted(m["role"] for m in found) == ["primary", "replica", "replica"], found
    for m in found:
        assert m["state"] == ("running" if m["role"] == "primary" else "streaming"), m
        for pid in (m["postmaster_pid"], m["patroni_pid"]):
            assert isinstance(pid, int), m
            assert alive(pid), m
    assert all(m["synchronous"] for m in found if m["role"] == "replica"), found
    ports = [m[key] for m in found for key in ("pg_port", "rest_port", "raft_port")]
    assert len(set(ports)) == 9
    summary = up.log.read_text()
    assert all(f"127.0.0.1:{m['pg_port']}" in summary for m in found), summary
    table = steadypay("cluster", "status", "--data-dir", str(up.data_dir))
    assert table.returncode == 0, table.stderr
    assert all(m["name"] in table.stdout for m in found)


def test_a_transfer_commits_through_the_cluster(up: Up, payments: Payments) -> None:
    assert payments.transfer("10.00") == 1
    assert (payments.balance(0), payments.balance(1)) == ("90.00", "10.00")
    # `ledger check` on the same data directory audits the cluster, not a new embedded node
    check = steadypay("ledger", "check", "--json", "--data-dir", str(up.data_dir))
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["transfers"] >= 1
    assert not (up.data_dir / "pgdata").exists()


def test_the_monitor_reports_every_member_of_the_cluster(up: Up) -> None:
    """`up` hands the monitor the members' Patroni REST URLs; each round records their roles."""
    primary = primary_of(members(up.data_dir))
    deadline = time.monotonic() + 30
    while True:
        r = httpx.get(f"{up.base}/v1/admin/health/history?limit=5", headers=up.admin, timeout=10)
        assert r.status_code == 200, r.text
        seen = [
            c["database_cluster"]
            for c in (round_["components"] for round_ in r.json()["data"])
            if "database_cluster" in c
        ]
        if seen and seen[0]["status"] == "pass":
            break
        assert time.monotonic() < deadline, f"no passing database_cluster check: {seen}"
        time.sleep(1)
    observed = seen[0]["observed"]
    assert observed["primary"] == primary, observed
    assert sorted(m["role"] for m in observed["members"]) == ["primary", "replica", "replica"]


def test_switchover_moves_the_primary_and_payments_continue(up: Up, payments: Payments) -> None:
    sent_before = payments.balance(1)
    old = primary_of(members(up.data_dir))
    result = steadypay("cluster", "switchover", "--yes", "--data-dir", str(up.data_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    after = members(up.data_dir)
    new = primary_of(after)
    assert new != old
    assert f"new primary: {new}" in result.stdout, result.stdout
    attempts = payments.transfer("1.00", retry_for_s=30)
    print(f"\nswitchover {old} -> {new}; the next transfer took {attempts} attempt(s)")
    assert Decimal(payments.balance(1)) == Decimal(sent_before) + 1  # once, not twice


def test_a_member_whose_patroni_dies_is_restarted(up: Up) -> None:
    replica = next(m for m in members(up.data_dir) if m["role"] == "replica")
    os.kill(replica["patroni_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    said = f"db {replica['name']:<11} Patroni stopped; restarted"
    while True:
        now = {m["name"]: m for m in members(up.data_dir)}[replica["name"]]
        restarted = now["patroni_pid"] not in (None, replica["patroni_pid"])
        # the member may stream a moment before the watchdog's restart call returns and says so
        if restarted and now["state"] == "streaming" and said in up.log.read_text():
            break
        assert time.monotonic() < deadline, (now, up.log.read_text()[-2000:])
        time.sleep(0.5)


def test_ctrl_c_stops_the_services_and_every_member(up: Up) -> None:
    found = members(up.data_dir)
    pids = [m[k] for m in found for k in ("patroni_pid", "postmaster_pid")]
    pids += [int(p.read_text()) for p in (up.data_dir / "run").glob("*.pid")]
    assert len(pids) == 6 + 5, pids  # three members, five services
    up.proc.send_signal(signal.SIGINT)
    assert up.proc.wait(timeout=90) == 0
    assert [pid for pid in pids if not gone_or_zombie(pid, within_s=10)] == []
    assert processes_mentioning(up.data_dir) == []
    assert "steadypay stopped." in up.log.read_text()
    status = steadypay("cluster", "status", "--json", "--data-dir", str(up.data_dir))
    assert status.returncode == 1  # no primary: nothing runs
    assert {m["state"] for m in json.loads(status.stdout)["members"]} == {"down"}
