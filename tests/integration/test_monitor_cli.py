"""`steadypay monitor` as an operator starts it: its own process on the session database, an
API that is down, a failover command, /metrics on its port, and Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from steadypay import bootstrap
from steadypay.config import Settings
from steadypay.monitor import repository as repo
from tests.e2e.processes import clean_env, free_port, running


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


async def test_the_monitor_process_fails_over_once_and_stops_on_ctrl_c(
    settings: Settings, container: bootstrap.Container, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"
    metrics_port = free_port()
    assert settings.admin_key is not None
    env = clean_env(
        STEADYPAY_DATABASE_URL=settings.require_database_url(),
        STEADYPAY_ADMIN_KEY=settings.admin_key.get_secret_value(),
        STEADYPAY_FRAUD_URL=settings.fraud_url,
        STEADYPAY_NOTIFICATION_URL=settings.notification_url,
        STEADYPAY_MONITOR_FAILOVER_COMMAND=f'echo "$STEADYPAY_FAILOVER_ID" >> "{calls}"',
    )
    argv = [
        "monitor",
        "--api-url", f"http://127.0.0.1:{free_port()}",  # nothing listens: every round fails
        "--interval", "0.1",
        "--threshold", "2",
        "--check-timeout", "1",
        "--metrics-port", str(metrics_port),
    ]  # fmt: skip
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    log = tmp_path / "monitor.log"
    with running(argv, log, env, ready_url=metrics_url) as proc:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (calls.exists() and calls.read_text()):
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # more failed rounds: suppressed, not another call
        async with httpx.AsyncClient(timeout=5) as http:
            text = (await http.get(metrics_url)).text
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        assert await asyncio.to_thread(proc.wait, 20) == 0, log.read_text()
        stopped_in = time.monotonic() - started
    [failover_id] = calls.read_text().split()
    [failover] = [
        f for f in await repo.recent_failovers(container.db, 20) if f.id == int(failover_id)
    ]
    assert failover.outcome == "succeeded"
    assert failover.action == "command"
    assert "api fail" in failover.reason
    assert stopped_in < 10
    assert samples(text, "steadypay_monitor_failovers_total")[(("outcome", "succeeded"),)] == 1
    assert samples(text, "steadypay_monitor_rounds_total")[(("result", "failed"),)] >= 3
    assert samples(text, "steadypay_monitor_is_leader")[()] == 1
    assert settings.admin_key.get_secret_value() not in log.read_text()
