"""Backups with the real barman-cloud against moto's S3 and KMS in two regions (docs/dr.md).

One region A per module: an embedded PostgreSQL archiving WAL to both buckets, the payment API
on it (real HTTP), and the `steadypay backup` commands run as a user runs them. What must
hold: a fresh backup verifies; a corrupted or deleted object of the backup, or a WAL segment
it needs, makes verify fail (exit 1, a clear message); every object in both buckets carries
SSE-KMS under its own region's key; a restore to a time between two transfers holds the first
and not the second; a restore refuses a running data directory without --yes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import httpx
import pytest
from typer.testing import CliRunner

from steadypay.bootstrap.api import create_app
from steadypay.bootstrap.backup import archive_settings
from steadypay.cli.main import app as cli
from steadypay.config import Environment, Settings
from steadypay.db.embedded import EmbeddedPostgres
from steadypay.db.migrate import upgrade
from tests.api_client import Api
from tests.integration.conftest import ADMIN_KEY, free_port, serve
from tests.moto_server import MotoServer

pytestmark = pytest.mark.timeout(600)

EAST, WEST = "us-east-1", "us-west-2"
PRIMARY_BUCKET, DR_BUCKET = "steadypay-backups-east", "steadypay-backups-west"


@dataclass
class Aws:
    endpoint: str
    env: dict[str, str]
    keys: dict[str, str]  # region -> KMS key ARN

    def s3(self, region: str) -> Any:
        return boto3.client("s3", region_name=region, endpoint_url=self.endpoint)


@dataclass
class Region:
    aws: Aws
    data_dir: Path
    node: EmbeddedPostgres
    env: dict[str, str]

    def cli(self, *args: str) -> Any:
        result = CliRunner().invoke(cli, list(args), env=self.env, catch_exceptions=False)
        return result

    def sql(self, query: str, *params: Any) -> Any:
        async def go() -> Any:
            conn = await asyncpg.connect(self.node.url)
            try:
                return await conn.fetch(query, *params)
            finally:
                await conn.close()

        return asyncio.run(go())


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Aws]:
    moto = MotoServer(tmp_path_factory.mktemp("moto"))
    moto.start()
    env = {
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": EAST,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
            patch.delenv(name, raising=False)
        keys = {r: boto3.client("kms", region_name=r).create_key()["KeyMetadata"]["Arn"]
                for r in (EAST, WEST)}  # fmt: skip
        boto3.client("s3", region_name=EAST).create_bucket(Bucket=PRIMARY_BUCKET)
        boto3.client("s3", region_name=WEST).create_bucket(
            Bucket=DR_BUCKET, CreateBucketConfiguration={"LocationConstraint": WEST}
        )
        try:
            yield Aws(moto.url, env, keys)
        finally:
            moto.stop()


@pytest.fixture(scope="module")
def region_a(aws: Aws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    data_dir = tmp_path_factory.mktemp("region-a")
    env = aws.env | {
        "STEADYPAY_DATA_DIR": str(data_dir),
        "STEADYPAY_BACKUP_ENABLED": "true",
        "STEADYPAY_BACKUP_BUCKET_URL": f"s3://{PRIMARY_BUCKET}/steadypay",
        "STEADYPAY_BACKUP_REGION": EAST,
        "STEADYPAY_BACKUP_KMS_KEY_ID": aws.keys[EAST],
        "STEADYPAY_BACKUP_DR_BUCKET_URL": f"s3://{DR_BUCKET}/steadypay",
        "STEADYPAY_BACKUP_DR_REGION": WEST,
        "STEADYPAY_BACKUP_DR_KMS_KEY_ID": aws.keys[WEST],
        "STEADYPAY_BACKUP_ARCHIVE_TIMEOUT_S": "2",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        settings = Settings()
        node = EmbeddedPostgres(data_dir, settings=archive_settings(settings))
        node.init()
        node.start()
        try:
            upgrade(node.url)
            yield Region(aws, data_dir, node, env)
        finally:
            node.stop(mode="immediate")


@pytest.fixture(scope="module")
async def payments(region_a: Region) -> AsyncIterator[Api]:
    settings = Settings(
        env=Environment.TEST,
        database_url=region_a.node.url,
        admin_key=ADMIN_KEY,
        backup_enabled=False,
        fraud_url=f"http://127.0.0.1:{free_port()}",
        notification_url=f"http://127.0.0.1:{free_port()}",
    )
    async with (
        serve(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30.0) as http,
    ):
        yield Api(http, ADMIN_KEY)


@pytest.fixture(scope="module")
def first_backup(region_a: Region) -> dict[str, Any]:
    result = region_a.cli("backup", "run", "--json", str(region_a.data_dir / "run.json"))
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads((region_a.data_dir / "run.json").read_text())
    return document


def test_a_backup_run_is_in_the_audit_trail(region_a: Region, first_backup: dict[str, Any]) -> None:
    rows = region_a.sql(
        "SELECT actor, action, source, details::text AS details FROM audit_log WHERE target = $1",
        first_backup["backup_id"],
    )
    assert [(r["action"], r["source"]) for r in rows] == [("backup.run", "local")]
    assert rows[0]["actor"].startswith("cli:")
    assert json.loads(rows[0]["details"])["bucket"].startswith("s3://")


def _archived(region: Region) -> None:
    """Switch WAL and wait until the segment is in the buckets (what archive_timeout does)."""
    segment = region.sql("SELECT pg_walfile_name(pg_switch_wal()) AS s")[0]["s"]
    deadline = time.monotonic() + 30
    while (region.sql("SELECT last_archived_wal AS w FROM pg_stat_archiver")[0]["w"] or "") < (
        segment
    ):
        assert time.monotonic() < deadline, "WAL was not archived"
        time.sleep(0.1)


def test_a_fresh_backup_verifies_from_both_buckets(
    region_a: Region, first_backup: dict[str, Any]
) -> None:
    assert first_backup["ok"]
    assert first_backup["status"] == "DONE"
    for source in ([], ["--from-dr"]):
        out = region_a.data_dir / "verify.json"
        result = region_a.cli("backup", "verify", *source, "--json", str(out))
        assert result.exit_code == 0, result.output
        verified = json.loads(out.read_text())
        assert (verified["ok"], verified["audit_ok"], verified["totals_match"]) == (True,) * 3
        assert verified["backup_id"] == first_backup["backup_id"]
    recorded = region_a.sql("SELECT ok, backup_id, bucket FROM backup.verifications")
    assert {(r["backup_id"], r["ok"], r["bucket"].split("/")[2]) for r in recorded} == {
        (first_backup["backup_id"], True, PRIMARY_BUCKET),
        (first_backup["backup_id"], True, DR_BUCKET),
    }
    listed = region_a.cli("backup", "list", "--json", str(region_a.data_dir / "list.json"))
    assert listed.exit_code == 0, listed.output
    backups = json.loads((region_a.data_dir / "list.json").read_text())["backups"]
    assert [(b["backup_id"], b["verified"]) for b in backups] == [(first_backup["backup_id"], True)]


def test_every_object_in_both_buckets_is_sse_kms_under_its_regions_key(
    region_a: Region, first_backup: dict[str, Any]
) -> None:
    _archived(region_a)
    assert region_a.cli("backup", "sync-dr").exit_code == 0
    for bucket, region in ((PRIMARY_BUCKET, EAST), (DR_BUCKET, WEST)):
        s3 = region_a.aws.s3(region)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
        assert any("/wals/" in k for k in keys), keys
        assert any("/base/" in k for k in keys), keys
        for key in keys:
            head = s3.head_object(Bucket=bucket, Key=key)
            assert head["ServerSideEncryption"] == "aws:kms", (bucket, key)
            assert head["SSEKMSKeyId"] == region_a.aws.keys[region], (bucket, key)


async def test_a_restore_to_a_time_between_two_transfers_has_the_first_only(
    region_a: Region, first_backup: dict[str, Any], payments: Api, tmp_path: Path
) -> None:
    _, source = await payments.funded_wallet("50.00")
    _, target = await payments.funded_wallet("")
    first = await payments.transfer(source["id"], target["id"], "1.00")
    assert first.status_code == 201, first.text
    await asyncio.sleep(1.0)
    between = datetime.now(UTC)
    await asyncio.sleep(1.0)
    second = await payments.transfer(source["id"], target["id"], "2.00")
    assert second.status_code == 201, second.text
    await asyncio.to_thread(_archived, region_a)

    restored = tmp_path / "restored"
    result = await asyncio.to_thread(
        region_a.cli, "backup", "restore", "--target-dir", str(restored),
        "--to-time", between.isoformat(), "--from-dr",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    node = EmbeddedPostgres(restored)
    node.start()
    try:
        conn = await asyncpg.connect(node.url)
        try:
            ids = {str(r["id"]) for r in await conn.fetch("SELECT id FROM transfers")}
        finally:
            await conn.close()
    finally:
        node.stop(mode="immediate")
    assert first.json()["id"] in ids
    assert second.json()["id"] not in ids


def test_a_restore_refuses_a_running_data_directory(
    region_a: Region, first_backup: dict[str, Any]
) -> None:
    target = str(region_a.data_dir)
    dry = region_a.cli("backup", "restore", "--target-dir", target, "--to-latest", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would restore" in dry.output
    assert "is running" in dry.output
    refused = region_a.cli("backup", "restore", "--target-dir", target, "--to-latest")
    assert refused.exit_code == 1
    assert "refusing to restore" in refused.output
    assert "--yes" in refused.output
    assert region_a.node.is_running()


def _first_wal_after_backup(region: Region, backup_id: str) -> str:
    s3 = region.aws.s3(EAST)
    info = s3.get_object(
        Bucket=PRIMARY_BUCKET, Key=f"steadypay/steadypay/base/{backup_id}/backup.info"
    )
    end_wal = next(
        line.split("=", 1)[1].strip()
        for line in info["Body"].read().decode().splitlines()
        if line.startswith("end_wal=")
    )
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=PRIMARY_BUCKET, Prefix="steadypay/steadypay/wals/")[
            "Contents"
        ]
    ]
    # the segment itself (gzip'd by the archiver), not the backup's history file beside it
    return next(k for k in keys if k.rsplit("/", 1)[-1] in (end_wal, f"{end_wal}.gz"))


@pytest.mark.parametrize("damage", ["corrupt", "delete"])
def test_verify_fails_when_a_wal_segment_it_needs_is_damaged(region_a: Region, damage: str) -> None:
    run = region_a.cli("backup", "run", "--json", str(region_a.data_dir / "run2.json"))
    assert run.exit_code == 0, run.output
    backup_id = json.loads((region_a.data_dir / "run2.json").read_text())["backup_id"]
    s3 = region_a.aws.s3(EAST)
    key = _first_wal_after_backup(region_a, backup_id)
    original = s3.get_object(Bucket=PRIMARY_BUCKET, Key=key)["Body"].read()
    try:
        if damage == "corrupt":
            s3.put_object(Bucket=PRIMARY_BUCKET, Key=key, Body=b"\0garbage" * 4096)
        else:
            s3.delete_object(Bucket=PRIMARY_BUCKET, Key=key)
        result = region_a.cli("backup", "verify", backup_id)
        assert result.exit_code == 1, result.output
        assert f"backup {backup_id} FAILED verification" in result.output
        assert "recovery" in result.output
    finally:
        s3.put_object(
            Bucket=PRIMARY_BUCKET, Key=key, Body=original, ServerSideEncryption="aws:kms",
            SSEKMSKeyId=region_a.aws.keys[EAST],
        )  # fmt: skip
    assert region_a.cli("backup", "verify", backup_id).exit_code == 0


@pytest.mark.parametrize("damage", ["corrupt", "delete"])
def test_verify_fails_when_an_object_of_the_backup_is_damaged(
    region_a: Region, first_backup: dict[str, Any], damage: str
) -> None:
    backup_id = first_backup["backup_id"]
    s3 = region_a.aws.s3(WEST)
    key = f"steadypay/steadypay/base/{backup_id}/data.tar"
    original = s3.get_object(Bucket=DR_BUCKET, Key=key)["Body"].read()
    if damage == "corrupt":
        s3.put_object(Bucket=DR_BUCKET, Key=key, Body=original[:-4096] + b"\xff" * 4096)
    else:
        s3.delete_object(Bucket=DR_BUCKET, Key=key)
    result = region_a.cli("backup", "verify", "--from-dr", backup_id)
    assert result.exit_code == 1, result.output
    assert f"backup {backup_id} FAILED verification" in result.output
    assert ("changed since the backup" if damage == "corrupt" else "missing") in result.output
    newest = region_a.sql(
        "SELECT ok FROM backup.verifications WHERE backup_id = $1 ORDER BY id DESC LIMIT 1",
        backup_id,
    )
    assert newest[0]["ok"] is False


def test_the_application_state_keeps_no_secret_in_plain_text(
    region_a: Region, tmp_path: Path
) -> None:
    admin_key = "sp_admin_" + "k" * 40
    (region_a.data_dir / "admin.key").write_text(admin_key + "\n")
    manifests = tmp_path / "k8s"
    (manifests / "base").mkdir(parents=True)
    (manifests / "base" / "api.yaml").write_text("kind: Deployment\n")
    env = region_a.env | {"STEADYPAY_ADMIN_KEY": "sp_admin_" + "e" * 40}
    stored = CliRunner().invoke(
        cli, ["backup", "app-state", "--include", str(manifests)], env=env, catch_exceptions=False
    )
    assert stored.exit_code == 0, stored.output
    pg_password = region_a.node.password_file.read_text().strip()
    secrets = [admin_key, pg_password, env["STEADYPAY_ADMIN_KEY"]]
    needles = [s.encode() for s in secrets] + [base64.b64encode(s.encode()) for s in secrets]
    for bucket, region in ((PRIMARY_BUCKET, EAST), (DR_BUCKET, WEST)):
        s3 = region_a.aws.s3(region)
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="steadypay/steadypay/appstate/")
        keys = [o["Key"] for o in listed["Contents"]]
        assert any(k.endswith("/secrets.bin") for k in keys), keys
        for key in keys:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert not [n for n in needles if n in body], key
            head = s3.head_object(Bucket=bucket, Key=key)
            assert head["SSEKMSKeyId"] == region_a.aws.keys[region]

    restored = tmp_path / "region-b"
    back = region_a.cli("backup", "restore-app-state", "--from-dr", "--target-dir", str(restored))
    assert back.exit_code == 0, back.output
    assert (restored / "admin.key").read_text().strip() == admin_key
    assert (restored / "pg-password").read_text().strip() == pg_password
    assert oct((restored / "pg-password").stat().st_mode & 0o777) == "0o600"
    assert (
        f"STEADYPAY_ADMIN_KEY={env['STEADYPAY_ADMIN_KEY']}"
        in (restored / "secrets.env").read_text()
    )
    assert (restored / "files" / "k8s" / "base" / "api.yaml").read_text() == "kind: Deployment\n"

    # one altered object: the restore refuses, loudly
    s3 = region_a.aws.s3(WEST)
    listed = s3.list_objects_v2(Bucket=DR_BUCKET, Prefix="steadypay/steadypay/appstate/")
    config_key = next(o["Key"] for o in listed["Contents"] if o["Key"].endswith("/config.json"))
    s3.put_object(Bucket=DR_BUCKET, Key=config_key, Body=b'{"env": "production"}')
    again = region_a.cli(
        "backup", "restore-app-state", "--from-dr", "--target-dir", str(tmp_path / "c"),
    )  # fmt: skip
    assert again.exit_code == 1
    assert "config.json does not match its checksum" in again.output


@pytest.mark.parametrize(("max_age_s", "status"), [(86_400.0, "pass"), (0.001, "warn")])
async def test_readiness_reports_the_age_of_the_newest_verified_backup(
    region_a: Region, first_backup: dict[str, Any], max_age_s: float, status: str
) -> None:
    # the first test verified first_backup; the API reads the record, never the bucket
    settings = Settings(
        env=Environment.TEST,
        database_url=region_a.node.url,
        admin_key=ADMIN_KEY,
        backup_enabled=True,
        backup_bucket_url=f"s3://{PRIMARY_BUCKET}/steadypay",
        backup_verified_max_age_s=max_age_s,
        fraud_url=f"http://127.0.0.1:{free_port()}",
        notification_url=f"http://127.0.0.1:{free_port()}",
    )
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as http:
        ready = await http.get("/health/ready")
        metrics = await http.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    check = ready.json()["checks"]["backup:verifiedAge"][0]
    assert check["status"] == status, check
    assert check["observedUnit"] == "s"
    assert check["observedValue"] >= 0
    assert ready.status_code == 200  # a stale backup warns; payments go on
    assert "steadypay_backup_last_verified_age_seconds" in metrics.text


def test_a_region_fenced_by_a_failover_elsewhere_takes_no_more_writes(region_a: Region) -> None:
    s3 = region_a.aws.s3(WEST)
    fence_key = "steadypay/steadypay/fence.json"
    fence = {"owner": WEST, "generation": 1, "fenced_at": datetime.now(UTC).isoformat()}
    s3.put_object(Bucket=DR_BUCKET, Key=fence_key, Body=json.dumps(fence).encode())
    try:
        result = region_a.cli("backup", "agent", "--once")
        assert result.exit_code == 1, result.output
        assert f"FENCED: {WEST} owns writes" in result.output
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            region_a.sql("CREATE TABLE written_after_the_fence (x int)")
    finally:
        s3.delete_object(Bucket=DR_BUCKET, Key=fence_key)
        region_a.sql("ALTER SYSTEM RESET default_transaction_read_only")
        region_a.sql("SELECT pg_reload_conf()")
    region_a.sql("CREATE TABLE written_after_the_fence (x int)")  # unfenced: writable again


def test_the_runbook_resumes_at_the_step_that_failed(
    region_a: Region, first_backup: dict[str, Any], tmp_path: Path
) -> None:
    from steadypay.cli.dr import build_plan
    from steadypay.dr import Dns, Runbook, stop_region

    _archived(region_a)
    assert region_a.cli("backup", "sync-dr").exit_code == 0
    synced = region_a.sql("SELECT actor FROM audit_log WHERE action = 'backup.sync_dr'")
    assert synced
    assert all(r["actor"].startswith("cli:") for r in synced)
    assert region_a.cli("backup", "app-state").exit_code == 0
    region_b = tmp_path / "region-b"
    plan = build_plan(
        Settings(), WEST, region_b, host="127.0.0.1", port=free_port(),
        fraud_port=free_port(), notification_port=free_port(), failed_at=None, dns_value=None,
    )  # fmt: skip
    broken = replace(plan, dns=Dns("ZNOSUCHZONE", "api.steadypay.test.", "127.0.0.1"))
    try:
        first = Runbook(broken).run()
        assert not first.ok
        assert [(s.name, s.status) for s in first.steps] == [
            ("fence", "done"), ("restore", "done"), ("start", "done"), ("verify", "done"),
            ("dns", "failed"),
        ], first.steps  # fmt: skip
        verify = next(s for s in first.steps if s.name == "verify")
        assert verify.detail["audited"] is True  # dr.failover in the new region's trail
        zone = (
            boto3.client("route53")
            .create_hosted_zone(Name="steadypay.test.", CallerReference=str(time.time()))[
                "HostedZone"
            ]["Id"]
            .split("/")[-1]
        )
        said: list[str] = []
        second = Runbook(replace(plan, dns=Dns(zone, "api.steadypay.test.", "127.0.0.1")),
                         say=said.append).run()  # fmt: skip
        assert second.ok, second.steps
        assert [s.status for s in second.steps] == ["done"] * 5 + ["skipped", "done"]
        for name in ("fence", "restore", "start", "verify"):  # not run again
            assert f"{name}: done before" in " ".join(said)
            assert next(s for s in second.steps if s.name == name) == next(
                s for s in first.steps if s.name == name
            )
        assert second.rto_s is not None
    finally:
        stop_region(region_b)
        EmbeddedPostgres(region_b).stop(mode="fast")
        fence = "steadypay/steadypay/fence.json"
        for bucket, region in ((PRIMARY_BUCKET, EAST), (DR_BUCKET, WEST)):
            region_a.aws.s3(region).delete_object(Bucket=bucket, Key=fence)
