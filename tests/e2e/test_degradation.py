"""Graceful degradation with real processes, as `steadypay up` runs them.

1. The fraud service is not running: transfers still complete, judged by the fallback rules; a
   large one is held for review (visible in available_balance); approve posts, reject and
   expiry void.
2. The notification service is down during 200 transfers, then started; the outbox relay is
   SIGKILLed mid-delivery and restarted by the supervisor: every event reaches the test
   webhook receiver, each event id once after its dedupe, every signature verifying.
Both end with `steadypay ledger check` passing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from steadypay.db.embedded import EmbeddedPostgres
from steadypay.notifications.signing import SignatureError, verify
from tests.e2e.processes import STEADYPAY, child_pids, clean_env, free_port, running

pytestmark = pytest.mark.e2e


class Client:
    def __init__(self, base: str, admin_key: str) -> None:
        self.base = base
        self.admin = admin_key
        self.http = httpx.Client(base_url=base, timeout=30)

    def post(self, path: str, body: dict[str, Any], key: str | None = None) -> httpx.Response:
        return self.http.post(
            path,
            json=body,
            headers={"Authorization": f"Bearer {key or self.admin}",
                     "Idempotency-Key": str(uuid.uuid4())},
        )  # fmt: skip

    def close(self) -> None:
        self.http.close()

    def get(self, path: str) -> dict[str, Any]:
        r = self.http.get(path, headers={"Authorization": f"Bearer {self.admin}"})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def funded_user(self, name: str, amount: str) -> tuple[dict[str, Any], str]:
        email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
        user = self.post("/v1/users", {"name": name, "email": email}).json()
        wallet = self.post("/v1/wallets", {"user_id": user["id"], "currency": "USD"}).json()
        if amount:
            r = self.post("/v1/deposits", {"wallet_id": wallet["id"], "amount": amount,
                                           "currency": "USD"})  # fmt: skip
            assert r.status_code == 201, r.text
        return user, wallet["id"]

    def transfer(self, src: str, dst: str, amount: str) -> httpx.Response:
        return self.post("/v1/transfers", {"from_wallet_id": src, "to_wallet_id": dst,
                                           "amount": amount, "currency": "USD"})  # fmt: skip

    def balances(self, wallet_id: str) -> tuple[str, str]:
        w = self.get(f"/v1/wallets/{wallet_id}")
        return w["balance"], w["available_balance"]


def ledger_check(data_dir: Path) -> None:
    check = subprocess.run(
        [STEADYPAY, "ledger", "check", "--data-dir", str(data_dir)],
        capture_output=True, text=True, env=clean_env(), timeout=120, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "LEDGER OK" in check.stdout


def test_payments_continue_without_the_fraud_service(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    env = clean_env(STEADYPAY_HOLD_TTL_HOURS="0.001", STEADYPAY_HOLD_EXPIRY_INTERVAL_S="0.5")
    argv = ["up", "--data-dir", str(data_dir), "--port", str(port), "--fraud-port",
            str(free_port()), "--notification-port", str(free_port()),
            "--services", "notifications,api,relay"]  # fmt: skip
    with running(argv, tmp_path / "up.log", env, f"http://127.0.0.1:{port}/health/ready"):
        api = Client(f"http://127.0.0.1:{port}", (data_dir / "admin.key").read_text().strip())
        ready = api.http.get("/health/ready")
        assert ready.status_code == 200  # the fraud service is down but not critical
        assert ready.json()["checks"]["fraud:circuit"][0]["status"] in {"pass", "warn"}
        _, alice = api.funded_user("alice", "40000.00")
        _, bob = api.funded_user("bob", "")
        sources = Counter()
        for _ in range(20):
            r = api.transfer(alice, bob, "10.00")
            assert r.status_code == 201, r.text
            sources[(r.json()["risk"]["source"], r.json()["status"])] += 1
        assert sources == {("fallback", "completed"): 20}  # 100% completed without fraud

        held = api.transfer(alice, bob, "11000.00").json()
        assert (held["status"], held["risk"]["source"]) == ("pending_review", "fallback")
        assert api.balances(alice) == ("39800.00", "28800.00")
        assert api.post(f"/v1/transfers/{held['id']}/approve", {}).json()["status"] == "completed"
        assert api.balances(bob) == ("11200.00", "11200.00")

        rejected = api.transfer(alice, bob, "10500.00").json()
        assert api.post(f"/v1/transfers/{rejected['id']}/reject", {}).status_code == 200
        assert api.balances(alice) == ("28800.00", "28800.00")

        expiring = api.transfer(alice, bob, "10200.00").json()
        assert expiring["status"] == "pending_review"
        deadline = time.monotonic() + 30
        while api.get(f"/v1/transfers/{expiring['id']}")["status"] != "expired":
            assert time.monotonic() < deadline, "the hold did not expire"
            time.sleep(0.5)
        assert api.post(f"/v1/transfers/{expiring['id']}/approve", {}).status_code == 409
        assert api.balances(alice) == ("28800.00", "28800.00")
        api.close()
        ledger_check(data_dir)


class Receiver:
    """A webhook receiver that verifies signatures and dedupes by event id."""

    def __init__(self) -> None:
        self.secret = ""
        self.raw: list[str] = []
        self.bad_signatures = 0
        self.events: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    verify(body, self.headers["Steadypay-Signature"], receiver.secret)
                    event = json.loads(body)
                    with receiver.lock:
                        receiver.raw.append(event["id"])
                        receiver.events.setdefault(event["id"], event)
                    self.send_response(200)
                except (SignatureError, KeyError, ValueError):
                    with receiver.lock:
                        receiver.bad_signatures += 1
                    self.send_response(400)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    @property
    def transfer_ids(self) -> set[str]:
        with self.lock:
            return {e["data"]["transfer"]["id"] for e in self.events.values()
                    if e["type"] == "transfer.completed"}  # fmt: skip


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_no_notification_is_lost(tmp_path: Path, receiver: Receiver) -> None:
    data_dir, port, notify_port = tmp_path / "data", free_port(), free_port()
    notify_url = f"http://127.0.0.1:{notify_port}"
    env = clean_env(
        STEADYPAY_OUTBOX_BACKOFF_BASE_S="0.2",
        STEADYPAY_OUTBOX_BACKOFF_CAP_S="1",
        STEADYPAY_OUTBOX_BATCH_SIZE="10",
        STEADYPAY_WEBHOOK_BACKOFF_BASE_S="0.2",
        STEADYPAY_WEBHOOK_BACKOFF_CAP_S="1",
        STEADYPAY_DEPENDENCIES__NOTIFICATIONS__URL=notify_url,
        STEADYPAY_DEPENDENCIES__NOTIFICATIONS__RESET_TIMEOUT_S="1",
        STEADYPAY_DEPENDENCIES__NOTIFICATIONS__TOTAL_TIMEOUT_S="5",
        STEADYPAY_DEPENDENCIES__NOTIFICATIONS__ATTEMPT_TIMEOUT_S="2",
    )
    argv = ["up", "--data-dir", str(data_dir), "--port", str(port), "--fraud-port",
            str(free_port()), "--notification-port", str(notify_port),
            "--services", "fraud,api,relay"]  # fmt: skip
    with running(argv, tmp_path / "up.log", env, f"http://127.0.0.1:{port}/health/ready") as up:
        admin_key = (data_dir / "admin.key").read_text().strip()
        service_env = dict(env, STEADYPAY_DATABASE_URL=EmbeddedPostgres(data_dir).url,
                           STEADYPAY_ADMIN_KEY=admin_key)  # fmt: skip
        notify_argv = ["notification-service", "--port", str(notify_port)]
        api = Client(f"http://127.0.0.1:{port}", admin_key)
        alice, a = api.funded_user("alice", "1000.00")
        _, b = api.funded_user("bob", "")
        with running(notify_argv, tmp_path / "n1.log", service_env, f"{notify_url}/health/live"):
            r = api.post("/v1/webhook_endpoints", {"url": receiver.url}, key=alice["api_key"])
            assert r.status_code == 201, r.text
            receiver.secret = r.json()["secret"]
        # the notification service is down now: payments go on, events wait in the outbox
        sent = []
        for _ in range(200):
            r = api.transfer(a, b, "1.00")
            assert r.status_code == 201, r.text
            sent.append(r.json()["id"])
        pending = api.get("/v1/admin/outbox?status=pending&limit=100")["data"]
        assert pending, "events should wait in the outbox while notifications are down"

        with running(notify_argv, tmp_path / "n2.log", service_env, f"{notify_url}/health/live"):
            # kill the relay mid-delivery; the supervisor restarts it
            time.sleep(0.5)
            [relay] = child_pids(up.pid, "outbox-relay")
            os.kill(relay, signal.SIGKILL)
            started = time.monotonic()
            while not set(sent) <= receiver.transfer_ids and time.monotonic() - started < 90:
                time.sleep(0.25)
            drained_s = time.monotonic() - started
        missing = set(sent) - receiver.transfer_ids
        assert not missing, f"{len(missing)} events never reached the receiver"
        assert receiver.bad_signatures == 0
        duplicates = len(receiver.raw) - len(receiver.events)
        print(f"\n200 transfers with notifications down: {len(receiver.events)} events "
              f"delivered after the service returned, {duplicates} duplicate deliveries "
              f"(deduped by event id), drained in {drained_s:.1f} s")  # fmt: skip
        assert [p for p in child_pids(up.pid, "outbox-relay") if p != relay]
        api.close()
        ledger_check(data_dir)
