"""The regional failover runbook as code: ``steadypay dr failover --to REGION``.

Seven steps, in this order, each idempotent and recorded in ``<data-dir>/dr-failover.json``
as it ends, so a run that stopped (a crash, Ctrl-C, a step that failed) resumes at the first
step not done:

1. **fence** the failed region: a fence record (``fence.json``: which region owns writes, a
   generation, when) in the DR bucket — it must be written — and in the failed region's bucket
   when it answers; then, if its primary can still be reached (``STEADYPAY_DR_PEER_DATABASE_URL``),
   make it read-only (``default_transaction_read_only``, every client session ended): its API
   then refuses writes with 503. A region that cannot be reached is recorded as such: DNS moves
   away from it in step 5, and it must check the fence before it takes writes again (failback,
   docs/dr.md).
2. **restore** the application state (secrets, envelope-decrypted with this region's KMS key)
   and the newest base backup plus every archived WAL segment from the DR bucket into a fresh
   data directory.
3. **start** steadypay's services there (``steadypay up``, detached; its log in ``up.log``).
4. **verify**: ``/health/ready`` answers, the ledger audit is clean, a canary payment (two
   users, a deposit and a transfer) is acknowledged.
5. **dns**: the Route 53 weighted records of the API's name: this region 100, the others 0.
   Only now, after verify: DNS never points at a region that cannot take payments.
6. **notify** stakeholders (SNS).
7. **report**: the timeline, RPO (the newest transfer restored against the time of the failure)
   and RTO (the failure to the canary's acknowledgement).

Nothing here blocks an event loop: the runbook is synchronous, its HTTP and database calls
each have a deadline.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import httpx
from botocore.exceptions import BotoCoreError, ClientError

from steadypay.backup import BackupTarget, service, store
from steadypay.backup.appstate import restore_app_state
from steadypay.backup.errors import BackupError
from steadypay.bootstrap.backup import (
    LedgerProbeImpl,
    make_read_only,
    newest_transfer_at,
    record_action,
    write_app_state,
)
from steadypay.db.embedded import EmbeddedPostgres
from steadypay.identity.audit import DR_FAILOVER, cli_entry

STEPS = ("fence", "restore", "start", "verify", "dns", "notify", "report")
STATE_FILE = "dr-failover.json"
Say = Callable[[str], None]


class RunbookError(Exception):
    """A step failed; the state file keeps what was done, a rerun resumes there."""


@dataclass(frozen=True, slots=True)
class Dns:
    hosted_zone_id: str
    record_name: str
    value: str  # this region's API address (an IP: an A record; else a CNAME)


@dataclass(frozen=True, slots=True)
class FailoverPlan:
    to_region: str
    data_dir: Path
    source: BackupTarget
    """The DR bucket, in ``to_region``: backups, WAL and application state come from here."""
    failed_bucket: BackupTarget | None
    host: str = "127.0.0.1"
    port: int = 8000
    fraud_port: int = 8001
    notification_port: int = 8002
    failed_at: datetime | None = None
    dns: Dns | None = None
    sns_topic_arn: str | None = None
    peer_database_url: str | None = None
    start_timeout_s: float = 120.0
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def describe(self) -> list[str]:
        dns = (
            f"point {self.dns.record_name} at {self.dns.value} (weight 100; others 0)"
            if self.dns
            else "no DNS step (STEADYPAY_DR_HOSTED_ZONE_ID unset)"
        )
        return [
            f"fence: write fence.json (owner {self.to_region}) to {self.source.bucket.url}"
            + (
                ", and make the failed region's primary read-only" if self.peer_database_url else ""
            ),
            f"restore: application state and the newest backup + all WAL from "
            f"{self.source.bucket.url} into {self.data_dir}",
            f"start: steadypay up --data-dir {self.data_dir} on {self.api_url}",
            "verify: /health/ready, the ledger audit, a canary payment",
            f"dns: {dns}",
            "notify: " + (f"SNS {self.sns_topic_arn}" if self.sns_topic_arn else "nobody (no SNS)"),
            "report: timeline, RPO and RTO",
        ]


@dataclass(slots=True)
class StepRecord:
    name: str
    status: str  # done | failed | skipped
    started_at: str
    ended_at: str
    duration_s: float
    detail: dict[str, Any]


@dataclass(slots=True)
class FailoverReport:
    plan: dict[str, Any]
    steps: list[StepRecord]
    ok: bool
    rto_s: float | None = None
    rpo_s: float | None = None
    restored_to: str | None = None
    first_payment_at: str | None = None

    def json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "plan": self.plan,
            "rto_s": self.rto_s,
            "rpo_s": self.rpo_s,
            "restored_to": self.restored_to,
            "first_payment_at": self.first_payment_at,
            "steps": [asdict(s) for s in self.steps],
        }


def _now() -> datetime:
    return datetime.now(UTC)


class Runbook:
    """Runs a :class:`FailoverPlan`, resuming from its state file."""

    def __init__(self, plan: FailoverPlan, say: Say = lambda _: None) -> None:
        self.plan = plan
        self.say = say
        self.state_path = plan.data_dir / STATE_FILE
        self.state: dict[str, Any] = self._load()

    def _load(self) -> dict[str, Any]:
        if self.state_path.is_file():
            loaded: dict[str, Any] = json.loads(self.state_path.read_text())
            return loaded
        return {"began_at": _now().isoformat(), "steps": {}}

    def _save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2, default=str))
        tmp.replace(self.state_path)

    def run(self) -> FailoverReport:
        failed_at = self.plan.failed_at or datetime.fromisoformat(self.state["began_at"])
        self.state.setdefault("failed_at", failed_at.isoformat())
        records: list[StepRecord] = []
        ok = True
        for name in STEPS:
            done = self.state["steps"].get(name)
            if done is not None and done["status"] in ("done", "skipped"):
                records.append(StepRecord(**done))
                self.say(f"{name}: done before ({done['ended_at']}), skipped")
                continue
            started, began = _now(), time.monotonic()
            self.say(f"{name} …")
            try:
                status, detail = getattr(self, f"_{name}")()
            except (RunbookError, BackupError, OSError) as exc:
                status, detail = "failed", {"error": str(exc)}
                ok = False
            record = StepRecord(
                name,
                status,
                started.isoformat(),
                _now().isoformat(),
                round(time.monotonic() - began, 3),
                detail,
            )
            self.state["steps"][name] = asdict(record)
            self._save()
            records.append(record)
            self.say(f"{name}: {status} in {record.duration_s:.1f} s")
            if not ok:
                break
        report = self.state["steps"].get("report", {}).get("detail", {})
        return FailoverReport(
            self.plan_json(),
            records,
            ok,
            report.get("rto_s"),
            report.get("rpo_s"),
            report.get("restored_to"),
            report.get("first_payment_at"),
        )

    def plan_json(self) -> dict[str, Any]:
        p = self.plan
        return {
            "to_region": p.to_region,
            "data_dir": str(p.data_dir),
            "source": p.source.bucket.url,
            "api_url": p.api_url,
            "failed_at": self.state.get("failed_at"),
            "dns": p.dns.record_name if p.dns else None,
        }

    # --- the steps ---------------------------------------------------------------------------

    def _fence(self) -> tuple[str, dict[str, Any]]:
        previous = store.get_json(self.plan.source, "fence.json") or {}
        record = {
            "owner": self.plan.to_region,
            "generation": int(previous.get("generation", 0)) + 1,
            "fenced_at": _now().isoformat(),
            "reason": "regional failover (steadypay dr failover)",
        }
        store.put_json(self.plan.source, "fence.json", record)
        detail: dict[str, Any] = {**record, "dr_bucket": "written"}
        if self.plan.failed_bucket is not None:
            try:
                store.put_json(self.plan.failed_bucket, "fence.json", record)
                detail["failed_bucket"] = "written"
            except BackupError as exc:
                detail["failed_bucket"] = f"unreachable: {str(exc)[:200]}"
        detail["failed_primary"] = self._fence_peer()
        return "done", detail

    def _fence_peer(self) -> str:
        url = self.plan.peer_database_url
        if url is None:
            return "not configured (STEADYPAY_DR_PEER_DATABASE_URL)"

        try:
            return make_read_only(url)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            return f"unreachable ({type(exc).__name__}): assumed down; DNS moves away in step 5"

    def _restore(self) -> tuple[str, dict[str, Any]]:
        data_dir = self.plan.data_dir
        node = EmbeddedPostgres(data_dir)
        if node.is_running():
            node.stop(mode="fast")
        state = restore_app_state(self.plan.source)
        data_dir.mkdir(parents=True, exist_ok=True)
        write_app_state(state, data_dir)
        if node.pgdata.exists():  # a restore that stopped halfway: start it again, clean
            import shutil

            shutil.rmtree(node.pgdata)
        restored = service.restore(
            self.plan.source,
            data_dir,
            password_file=data_dir / "pg-password",
            say=self.say,
        )
        newest = newest_transfer_at(restored.url())
        restored.node.stop(mode="fast")
        return "done", {
            **restored.as_json(),
            "app_secrets": sorted(state.secrets),
            "newest_transfer_at": newest.isoformat() if newest else None,
        }

    def _start(self) -> tuple[str, dict[str, Any]]:
        plan = self.plan
        if _ready(plan.api_url):
            return "done", {"api_url": plan.api_url, "note": "already serving"}
        env = os.environ | plan.extra_env | {"STEADYPAY_BACKUP_ENABLED": "false"}
        argv = [
            sys.executable, "-m", "steadypay", "up", "--data-dir", str(plan.data_dir),
            "--host", plan.host, "--port", str(plan.port), "--fraud-port", str(plan.fraud_port),
            "--notification-port", str(plan.notification_port),
        ]  # fmt: skip
        # a daemon of its own session that outlives this command: spawned, not a Popen (whose
        # object would warn, when collected, that its process still runs)
        log = os.open(plan.data_dir / "up.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            pid = os.posix_spawn(
                sys.executable,
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, log, 1),
                    (os.POSIX_SPAWN_DUP2, log, 2),
                ],
                setsid=True,
            )
        finally:
            os.close(log)
        (plan.data_dir / "up.pid").write_text(f"{pid}\n")
        deadline = time.monotonic() + plan.start_timeout_s
        while not _ready(plan.api_url):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                raise RunbookError(
                    f"steadypay up exited ({os.waitstatus_to_exitcode(status)}): see "
                    f"{plan.data_dir / 'up.log'}"
                )
            if time.monotonic() > deadline:
                raise RunbookError(f"{plan.api_url} not ready within {plan.start_timeout_s:g} s")
            time.sleep(0.2)
        return "done", {"api_url": plan.api_url, "pid": pid}

    def _verify(self) -> tuple[str, dict[str, Any]]:
        plan = self.plan
        node = EmbeddedPostgres(plan.data_dir)
        clean, report = LedgerProbeImpl().audit(node.url)
        if not clean:
            raise RunbookError(f"the ledger audit of the restored region failed: {report}")
        admin_key = (plan.data_dir / "admin.key").read_text().strip()
        acknowledged = canary_payment(plan.api_url, admin_key)
        entry = cli_entry(DR_FAILOVER, plan.to_region, failed_at=self.state.get("failed_at"))
        audited = record_action(node.url, entry)
        return "done", {
            "ledger_audit": "clean",
            "canary_acknowledged_at": acknowledged,
            "audited": audited,
        }

    def _dns(self) -> tuple[str, dict[str, Any]]:
        dns = self.plan.dns
        if dns is None:
            return "skipped", {"reason": "no hosted zone configured"}
        client = boto3.client("route53")
        kind = "A" if dns.value.replace(".", "").isdigit() else "CNAME"
        try:
            found = client.list_resource_record_sets(
                HostedZoneId=dns.hosted_zone_id, StartRecordName=dns.record_name
            )["ResourceRecordSets"]
            name = dns.record_name.rstrip(".") + "."
            others = [r for r in found if r["Name"] == name and r.get("SetIdentifier")
                      and r["SetIdentifier"] != self.plan.to_region]  # fmt: skip
            changes: list[Any] = [
                {"Action": "UPSERT", "ResourceRecordSet": {**r, "Weight": 0}} for r in others
            ]
            changes.append({"Action": "UPSERT", "ResourceRecordSet": {
                "Name": name, "Type": kind, "SetIdentifier": self.plan.to_region, "Weight": 100,
                "TTL": 30, "ResourceRecords": [{"Value": dns.value}]}})  # fmt: skip
            change = client.change_resource_record_sets(
                HostedZoneId=dns.hosted_zone_id,
                ChangeBatch={"Comment": "steadypay dr failover", "Changes": changes},
            )
        except (BotoCoreError, ClientError) as exc:
            raise RunbookError(f"Route 53 refused the change: {exc}") from exc
        return "done", {
            "record": name,
            "value": dns.value,
            "weight_zero": [r["SetIdentifier"] for r in others],
            "change_id": change["ChangeInfo"]["Id"],
        }

    def _notify(self) -> tuple[str, dict[str, Any]]:
        topic = self.plan.sns_topic_arn
        if topic is None:
            return "skipped", {"reason": "no SNS topic configured"}
        steps = {k: v["status"] for k, v in self.state["steps"].items()}
        message = {"event": "steadypay.region_failover", "to_region": self.plan.to_region,
                   "api_url": self.plan.api_url, "steps": steps}  # fmt: skip
        try:
            sent = boto3.client("sns", region_name=self.plan.source.region).publish(
                TopicArn=topic,
                Subject=f"steadypay failed over to {self.plan.to_region}",
                Message=json.dumps(message),
            )
        except (BotoCoreError, ClientError) as exc:
            raise RunbookError(f"SNS refused the notification: {exc}") from exc
        return "done", {"topic": topic, "message_id": sent["MessageId"]}

    def _report(self) -> tuple[str, dict[str, Any]]:
        steps = self.state["steps"]
        failed_at = datetime.fromisoformat(self.state["failed_at"])
        newest = steps["restore"]["detail"].get("newest_transfer_at")
        first = steps["verify"]["detail"]["canary_acknowledged_at"]
        rto = (datetime.fromisoformat(first) - failed_at).total_seconds()
        rpo = None
        if newest is not None:
            rpo = max(0.0, (failed_at - datetime.fromisoformat(newest)).total_seconds())
        return "done", {
            "rto_s": round(rto, 3),
            "rpo_s": None if rpo is None else round(rpo, 3),
            "restored_to": newest,
            "first_payment_at": first,
            "failed_at": failed_at.isoformat(),
        }


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/ready", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def canary_payment(api_url: str, admin_key: str, timeout_s: float = 30.0) -> str:
    """Two users, a deposit and a transfer through the API; when the transfer was
    acknowledged (ISO time). Retries while the region warms up, each call idempotent."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    deadline = time.monotonic() + timeout_s
    tag = secrets.token_hex(4)
    with httpx.Client(base_url=api_url, timeout=5.0, headers=headers) as http:

        def post(path: str, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
            while True:
                extra = {"Idempotency-Key": f"dr-canary-{tag}-{key}"} if key else {}
                try:
                    r = http.post(path, json=body, headers=extra)
                    if r.status_code in (200, 201):
                        answer: dict[str, Any] = r.json()
                        return answer
                    problem = f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as exc:
                    problem = type(exc).__name__
                if time.monotonic() > deadline:
                    raise RunbookError(f"canary payment: POST {path} failed: {problem}")
                time.sleep(0.2)

        wallets = []
        for who in ("sender", "receiver"):
            user = post("/v1/users", {"name": f"dr canary {who}",
                                      "email": f"dr-{tag}-{who}@example.com"})  # fmt: skip
            wallets.append(post("/v1/wallets", {"user_id": user["id"], "currency": "USD"}))
        post("/v1/deposits", {"wallet_id": wallets[0]["id"], "amount": "1.00",
                              "currency": "USD"}, "deposit")  # fmt: skip
        post("/v1/transfers", {"from_wallet_id": wallets[0]["id"],
                               "to_wallet_id": wallets[1]["id"], "amount": "0.50",
                               "currency": "USD"}, "transfer")  # fmt: skip
        return _now().isoformat()


def stop_region(data_dir: Path, grace_s: float = 30.0) -> None:
    """Stop the `steadypay up` the runbook started in ``data_dir`` (SIGINT, as Ctrl-C)."""
    pid_file = data_dir / "up.pid"
    if not pid_file.is_file():
        return
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            break
        time.sleep(0.2)
    else:
        os.killpg(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs; reaps it when it is our child (a zombie answers kill 0)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:  # not ours: started by another `dr failover`
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
