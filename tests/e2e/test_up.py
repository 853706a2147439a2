"""`steadypay up` as a user starts it: its own embedded PostgreSQL, real HTTP, then Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.processes import STEADYPAY, clean_env, free_port, gone_or_zombie

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path_factory.mktemp("up")
    port = free_port()
    log = (data_dir.parent / "up.log").open("w")
    proc = subprocess.Popen(
        [
            STEADYPAY,
            "up",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--workers",
            "2",
            "--fraud-port",
            str(free_port()),
            "--notification-port",
            str(free_port()),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=clean_env(),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"steadypay up exited: {Path(log.name).read_text()}")
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError(f"not ready in 90 s: {Path(log.name).read_text()}")
        yield base, data_dir
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def test_up_serves_the_whole_flow_and_stops_cleanly(server: tuple[str, Path]) -> None:
    base, data_dir = server
    output = (data_dir.parent / "up.log").read_text()
    key_file = data_dir / "admin.key"
    assert str(key_file) in output, output
    assert f"{base}/docs" in output
    assert key_file.stat().st_mode & 0o777 == 0o600
    admin = {"Authorization": f"Bearer {key_file.read_text().strip()}"}

    def post(path: str, body: dict[str, str], headers: dict[str, str]) -> httpx.Response:
        return httpx.post(
            f"{base}{path}",
            json=body,
            headers=headers | {"Idempotency-Key": str(uuid.uuid4())},
            timeout=10,
        )

    users = [
        post("/v1/users", {"name": n, "email": f"{n}-{uuid.uuid4().hex[:6]}@example.com"}, admin)
        for n in ("ana", "ben")
    ]
    assert [u.status_code for u in users] == [201, 201]
    ana, ben = (u.json() for u in users)
    wallets = [
        post("/v1/wallets", {"user_id": u["id"], "currency": "USD"}, admin) for u in (ana, ben)
    ]
    assert [w.status_code for w in wallets] == [201, 201]
    wa, wb = (w.json()["id"] for w in wallets)
    r = post("/v1/deposits", {"wallet_id": wa, "amount": "50.00", "currency": "USD"}, admin)
    assert r.status_code == 201
    ana_auth = {"Authorization": f"Bearer {ana['api_key']}"}
    for amount in ("10.00", "5.55"):
        body = {"from_wallet_id": wa, "to_wallet_id": wb, "amount": amount, "currency": "USD"}
        assert post("/v1/transfers", body, ana_auth).status_code == 201
    r = httpx.get(f"{base}/v1/wallets/{wa}/entries", headers=ana_auth, timeout=10)
    assert [e["amount"] for e in r.json()["data"]] == ["-5.55", "-10.00", "50.00"]
    assert httpx.get(f"{base}/v1/wallets/{wb}", headers=admin).json()["balance"] == "15.55"

    # `ledger check` against the running instance's embedded database
    check = subprocess.run(
        [STEADYPAY, "ledger", "check", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "LEDGER OK" in check.stdout


def test_ctrl_c_stops_the_embedded_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    proc = subprocess.Popen(
        [
            STEADYPAY,
            "up",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--fraud-port",
            str(free_port()),
            "--notification-port",
            str(free_port()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=clean_env(),
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        pidfile = data_dir / "pgdata" / "postmaster.pid"
        assert pidfile.exists()
        postmaster = int(pidfile.read_text().split()[0])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert not pidfile.exists()
        assert gone_or_zombie(postmaster, within_s=10)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_metrics_are_summed_over_the_workers(server: tuple[str, Path]) -> None:
    """Two API workers: /metrics answers from one of them but counts the requests of both."""
    base, _ = server

    def live_count() -> float:
        text = httpx.get(f"{base}/metrics", timeout=10).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if (
                    sample.name == "steadypay_http_requests_total"
                    and sample.labels.get("route") == "/health/live"
                ):
                    total += sample.value
        return total

    before = live_count()
    with httpx.Client(base_url=base, timeout=10) as client:
        for _ in range(40):  # new connections: both workers take some
            assert client.get("/health/live", headers={"Connection": "close"}).status_code == 200
    assert live_count() - before == 40


def test_logs_are_json_follow_a_request_across_services_and_hold_no_secrets(
    server: tuple[str, Path],
) -> None:
    """One payment is traceable by its request id through the API's and the fraud service's
    log lines; no key, secret or e-mail address created in this run appears in any log."""
    base, data_dir = server
    admin_key = (data_dir / "admin.key").read_text().strip()
    admin = {"Authorization": f"Bearer {admin_key}"}
    secrets: list[str] = [admin_key]

    def post(path: str, body: dict[str, str], headers: dict[str, str]) -> httpx.Response:
        return httpx.post(
            f"{base}{path}",
            json=body,
            headers=headers | {"Idempotency-Key": str(uuid.uuid4())},
            timeout=10,
        )

    emails = [f"{n}.{uuid.uuid4().hex[:8]}@example.com" for n in ("cara", "dev")]
    secrets += emails
    users = [post("/v1/users", {"name": "n", "email": e}, admin).json() for e in emails]
    secrets += [u["api_key"] for u in users]
    wa, wb = (
        post("/v1/wallets", {"user_id": u["id"], "currency": "USD"}, admin).json()["id"]
        for u in users
    )
    assert post("/v1/deposits", {"wallet_id": wa, "amount": "20.00", "currency": "USD"}, admin)
    payer = {"Authorization": f"Bearer {users[0]['api_key']}"}
    trace = "trace-" + uuid.uuid4().hex
    transfer = {"from_wallet_id": wa, "to_wallet_id": wb, "amount": "1.00", "currency": "USD"}
    r = post("/v1/transfers", transfer, payer | {"X-Request-Id": trace})
    assert r.status_code == 201, r.text
    assert r.headers["x-request-id"] == trace
    wrong_key = "sp_" + uuid.uuid4().hex + uuid.uuid4().hex
    secrets.append(wrong_key)
    r = post("/v1/transfers", transfer, {"Authorization": f"Bearer {wrong_key}"})
    assert r.status_code == 401
    assert r.json()["error"]["request_id"] == r.headers["x-request-id"]
    hook = post("/v1/webhook_endpoints", {"url": "http://127.0.0.1:9/hook"}, payer)
    assert hook.status_code == 201, hook.text
    secrets.append(hook.json()["secret"])
    rotated = post(f"/v1/webhook_endpoints/{hook.json()['id']}/rotate_secret", {}, payer)
    assert rotated.status_code == 200, rotated.text
    secrets.append(rotated.json()["secret"])

    time.sleep(0.5)  # let every process write its lines
    text = (data_dir.parent / "up.log").read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    traced = [line for line in lines if line.get("request_id") == trace]
    by_service = {line["service"] for line in traced}
    assert {"api", "fraud"} <= by_service, traced
    api_line = next(x for x in traced if x["service"] == "api" and x["event"] == "http_request")
    assert api_line["route"] == "/v1/transfers"
    assert api_line["status"] == 201
    assert all("timestamp" in x and "level" in x for x in lines)
    leaked = [s for s in secrets if s in text]
    assert not leaked, f"{len(leaked)} secret(s) found in the logs"


def test_up_runs_the_health_monitor(server: tuple[str, Path]) -> None:
    """The monitor `up` starts records a healthy round of all four checks (the canary paid
    there and back through the API) and its metrics join the API's /metrics."""
    base, data_dir = server
    admin = {"Authorization": f"Bearer {(data_dir / 'admin.key').read_text().strip()}"}
    deadline = time.monotonic() + 60
    body = {"data": []}
    while time.monotonic() < deadline:
        r = httpx.get(f"{base}/v1/admin/health/history", headers=admin, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        if body["data"]:
            break
        time.sleep(0.5)
    assert body["data"], "the monitor recorded no round within 60 s"
    newest = body["data"][0]
    assert newest["role"] == "leader"
    assert {name: c["status"] for name, c in newest["components"].items()} == {
        "api": "pass",
        "database": "pass",
        "payments": "pass",
        "dependencies": "pass",
    }, newest
    assert newest["decision"] == "healthy"
    assert body["state"]["status"] == "healthy"
    text = httpx.get(f"{base}/metrics", timeout=10).text
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert {
        "steadypay_monitor_rounds_total",
        "steadypay_monitor_consecutive_failures",
        "steadypay_monitor_is_leader",
        "steadypay_monitor_check_duration_seconds_count",
    } <= names


def test_chaos_bank_against_up_is_clean_and_every_event_is_delivered(
    server: tuple[str, Path],
) -> None:
    base, data_dir = server
    report = data_dir.parent / "bank.json"
    history = data_dir.parent / "bank.history.jsonl"
    result = subprocess.run(
        [
            STEADYPAY, "chaos", "bank", "--url", base, "--data-dir", str(data_dir),
            "--wallets", "4", "--clients", "4", "--duration", "2", "--seed", "5",
            "--check-notifications", "--notify-within", "30",
            "--json", str(report), "--history", str(history),
        ],
        capture_output=True, text=True, env=clean_env(), timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BANK OK" in result.stdout
    verdict = json.loads(report.read_text())
    assert verdict["ok"] is True
    assert verdict["checks"]["notified"] == 0
    assert verdict["counts"]["acknowledged"] > 10
    lines = history.read_text().splitlines()
    assert len(lines) == verdict["counts"]["attempted"]
    assert {json.loads(line)["outcome"] for line in lines} <= {"ok", "failed", "unknown"}
