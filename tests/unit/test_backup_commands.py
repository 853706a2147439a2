"""The barman-cloud command lines, the PostgreSQL parameters, the settings' checks and the
choice of a backup to restore: pure code, no S3."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest

from steadypay.backup.commands import (
    BackupTarget,
    BucketUrl,
    archive_parameters,
    recovery_parameters,
)
from steadypay.backup.errors import BackupError
from steadypay.backup.service import BackupInfo, _choose, parse_time
from steadypay.config import BackupSettings, DrSettings

KEY_EAST = "arn:aws:kms:us-east-1:123456789012:key/1111"
KEY_WEST = "arn:aws:kms:us-west-2:123456789012:key/2222"


def _targets() -> tuple[BackupTarget, BackupTarget]:
    settings = BackupSettings(
        backup_enabled=True,
        backup_bucket_url="s3://east/pg/",
        backup_region="us-east-1",
        backup_kms_key_id=KEY_EAST,
        backup_dr_bucket_url="s3://west/pg",
        backup_dr_region="us-west-2",
        backup_dr_kms_key_id=KEY_WEST,
    )
    primary = BackupTarget.primary(settings, "http://127.0.0.1:5000")
    dr = BackupTarget.dr(settings, "http://127.0.0.1:5000")
    assert dr is not None
    return primary, dr


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [("s3://b", "b", ""), ("s3://b/", "b", ""), ("s3://b/a/c/", "b", "a/c")],
)
def test_bucket_urls_split_into_bucket_and_prefix(url: str, bucket: str, prefix: str) -> None:
    parsed = BucketUrl.parse(url)
    assert (parsed.bucket, parsed.prefix) == (bucket, prefix)
    assert parsed.key("steadypay", "base") == "/".join(
        p for p in (prefix, "steadypay", "base") if p
    )


@pytest.mark.parametrize("url", ["http://b/x", "s3://", "b/x"])
def test_a_url_that_is_not_s3_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="s3"):
        BucketUrl.parse(url)


def test_wal_goes_to_both_buckets_each_under_its_own_key() -> None:
    primary, dr = _targets()
    params = archive_parameters(primary, dr, 3)
    assert params["archive_mode"] == "on"
    assert params["archive_timeout"] == "3"
    first, second = params["archive_command"].split(" && ")
    for command, bucket, region, key in (
        (first, "s3://east/pg", "us-east-1", KEY_EAST),
        (second, "s3://west/pg", "us-west-2", KEY_WEST),
    ):
        argv = shlex.split(command)
        assert argv[:2] == ["env", f"AWS_DEFAULT_REGION={region}"]
        assert argv[2].endswith("barman-cloud-wal-archive")
        assert argv[argv.index("--sse-kms-key-id") + 1] == key
        assert argv[argv.index("-e") + 1] == "aws:kms"
        assert "--gzip" in argv
        assert argv[-3:] == [bucket, "steadypay", "%p"]
        assert argv[argv.index("--endpoint-url") + 1] == "http://127.0.0.1:5000"


def test_without_a_dr_bucket_wal_goes_to_the_primary_only() -> None:
    primary, _ = _targets()
    assert "&&" not in archive_parameters(primary, None, 5)["archive_command"]


def test_recovery_goes_to_a_time_or_an_lsn_never_both() -> None:
    _, dr = _targets()
    to_time = recovery_parameters(dr, target_time="2026-12-07T10:00:00+00:00")
    assert to_time["recovery_target_time"] == "2026-12-07T10:00:00+00:00"
    assert to_time["recovery_target_action"] == "promote"
    assert to_time["archive_mode"] == "off"  # a restore never writes into the bucket
    assert "barman-cloud-wal-restore" in to_time["restore_command"]
    assert "recovery_target_time" not in recovery_parameters(dr)
    with pytest.raises(ValueError, match="not both"):
        recovery_parameters(dr, target_time="2026-12-07T10:00:00Z", target_lsn="0/1")


def test_backup_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="STEADYPAY_BACKUP_BUCKET_URL"):
        BackupSettings(backup_enabled=True)
    with pytest.raises(ValueError, match="s3://"):
        BackupSettings(backup_bucket_url="https://example.com/x")
    with pytest.raises(ValueError, match="must differ"):
        BackupSettings(backup_bucket_url="s3://a/p", backup_dr_bucket_url="s3://a/p")
    with pytest.raises(ValueError, match="both"):
        DrSettings(dr_hosted_zone_id="Z123")


def test_barman_times_parse_as_utc() -> None:
    expected = datetime(2026, 12, 7, 7, 40, 1, tzinfo=UTC)
    assert parse_time("Mon Dec  7 07:40:01 2026") == expected
    assert parse_time("2026-12-07T07:40:01+00:00") == expected
    assert parse_time(None) is None
    assert parse_time("soon") is None


def _backup(ident: str, ended: str, status: str = "DONE") -> BackupInfo:
    return BackupInfo(ident, status, None, ended, None, None)


def test_a_restore_to_a_time_starts_from_the_newest_backup_ended_before_it() -> None:
    backups = [
        _backup("a", "Mon Dec  7 01:00:00 2026"),
        _backup("b", "Mon Dec  7 02:00:00 2026"),
        _backup("c", "Mon Dec  7 03:00:00 2026", status="FAILED"),
    ]
    assert _choose(backups, None, None).backup_id == "b"
    assert _choose(backups, None, datetime(2026, 12, 7, 1, 30, tzinfo=UTC)).backup_id == "a"
    with pytest.raises(BackupError, match="ended before"):
        _choose(backups, None, datetime(2026, 12, 7, 0, 30, tzinfo=UTC))
    with pytest.raises(BackupError, match="FAILED, not DONE"):
        _choose(backups, "c", None)
    with pytest.raises(BackupError, match="no backup 'x'"):
        _choose(backups, "x", None)


def test_restore_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    from steadypay.backup.service import target_problem

    assert target_problem(tmp_path / "new") is None
    (tmp_path / "old" / "pgdata").mkdir(parents=True)
    (tmp_path / "old" / "pgdata" / "PG_VERSION").write_text("16\n")
    assert "is not empty" in (target_problem(tmp_path / "old") or "")
