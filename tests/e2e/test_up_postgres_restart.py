"""`steadypay up` keeps its embedded PostgreSQL running: a killed postmaster comes back on the
same port, and payments resume with nothing lost."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import clean_env, free_port, running, wait_ready

pytestmark = pytest.mark.e2e


def test_a_killed_embedded_postgres_is_restarted_and_payments_resume(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "up.log"
    argv = ["up", "--port", str(port), "--data-dir", str(data_dir), "--services", "api"]
    with running(argv, log, clean_env()) as proc:
        wait_ready(f"{base}/health/ready", proc, log)
        admin = {"Authorization": f"Bearer {(data_dir / 'admin.key').read_text().strip()}"}

        def post(path: str, body: dict[str, str]) -> httpx.Response:
            headers = admin | {"Idempotency-Key": str(uuid.uuid4())}
            return httpx.post(f"{base}{path}", json=body, headers=headers, timeout=10)

        user = post("/v1/users", {"name": "p", "email": f"p{uuid.uuid4().hex[:8]}@example.com"})
        wallet = post("/v1/wallets", {"user_id": user.json()["id"], "currency": "USD"}).json()
        deposit = {"wallet_id": wallet["id"], "amount": "5.00", "currency": "USD"}
        assert post("/v1/deposits", deposit).status_code == 201

        postmaster = int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while "restarted on port" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        wait_ready(f"{base}/health/ready", proc, log, within_s=30)
        assert post("/v1/deposits", deposit).status_code == 201
        r = httpx.get(f"{base}/v1/wallets/{wallet['id']}", headers=admin, timeout=10)
        assert r.json()["balance"] == "10.00"  # the deposit before the crash survived it
        new_pid = int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
        assert new_pid != postmaster
