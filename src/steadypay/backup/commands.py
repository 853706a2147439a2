"""The barman-cloud command lines and the PostgreSQL parameters that archive WAL: pure.

Every command talks to S3 through ``--endpoint-url`` when one is configured (boto3's
``AWS_ENDPOINT_URL``, resolved by the caller), writes with SSE-KMS under the bucket's region
key (``-e aws:kms --sse-kms-key-id``), and runs with ``AWS_DEFAULT_REGION`` set to the bucket's
region (not every barman-cloud command has ``--aws-region``).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from steadypay.config.contexts import BackupSettings

WAL_ARCHIVE = "barman-cloud-wal-archive"
WAL_RESTORE = "barman-cloud-wal-restore"
BACKUP = "barman-cloud-backup"
RESTORE = "barman-cloud-restore"
BACKUP_LIST = "barman-cloud-backup-list"
BACKUP_DELETE = "barman-cloud-backup-delete"


def tool(name: str) -> str:
    """The barman-cloud program installed beside this interpreter (the venv's ``bin``)."""
    return str(Path(sys.executable).parent / name)


@dataclass(frozen=True, slots=True)
class BucketUrl:
    """``s3://bucket/prefix`` split into its bucket and key prefix (no trailing slash)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> BucketUrl:
        if not url.startswith("s3://"):
            raise ValueError(f"not an s3:// URL: {url!r}")
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {url!r}")
        return cls(bucket, prefix.strip("/"))

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)


@dataclass(frozen=True, slots=True)
class BackupTarget:
    """One bucket (the primary or the DR copy) and how to reach and encrypt it."""

    bucket: BucketUrl
    region: str | None
    kms_key_id: str | None
    server_name: str
    endpoint_url: str | None

    @classmethod
    def primary(cls, settings: BackupSettings, endpoint_url: str | None) -> BackupTarget:
        if settings.backup_bucket_url is None:
            raise ValueError("no backup bucket: set STEADYPAY_BACKUP_BUCKET_URL")
        return cls(
            BucketUrl.parse(settings.backup_bucket_url),
            settings.backup_region,
            settings.backup_kms_key_id,
            settings.backup_server_name,
            endpoint_url,
        )

    @classmethod
    def dr(cls, settings: BackupSettings, endpoint_url: str | None) -> BackupTarget | None:
        if settings.backup_dr_bucket_url is None:
            return None
        return cls(
            BucketUrl.parse(settings.backup_dr_bucket_url),
            settings.backup_dr_region,
            settings.backup_dr_kms_key_id,
            settings.backup_server_name,
            endpoint_url,
        )

    def env(self) -> dict[str, str]:
        """Variables the commands need beyond the caller's (the region)."""
        return {"AWS_DEFAULT_REGION": self.region} if self.region else {}

    def _cloud(self) -> list[str]:
        args = ["--cloud-provider", "aws-s3"]
        if self.endpoint_url:
            args += ["--endpoint-url", self.endpoint_url]
        return args

    def _encryption(self) -> list[str]:
        if self.kms_key_id:
            return ["-e", "aws:kms", "--sse-kms-key-id", self.kms_key_id]
        return []

    def wal_archive(self, wal_path: str = "%p") -> list[str]:
        # gzip: a segment switched by archive_timeout is mostly zeros (16 MiB -> ~20 KiB);
        # barman-cloud-wal-restore decompresses by itself
        return [
            tool(WAL_ARCHIVE),
            *self._cloud(),
            *self._encryption(),
            "--gzip",
            self.bucket.url,
            self.server_name,
            wal_path,
        ]

    def wal_restore(self, wal_name: str = "%f", destination: str = "%p") -> list[str]:
        return [
            tool(WAL_RESTORE),
            *self._cloud(),
            self.bucket.url,
            self.server_name,
            wal_name,
            destination,
        ]

    def backup(self, host: str, port: int, user: str, dbname: str = "postgres") -> list[str]:
        return [
            tool(BACKUP),
            *self._cloud(),
            *self._encryption(),
            "--immediate-checkpoint",
            f"--host={host}",
            f"--port={port}",
            f"--user={user}",
            f"--dbname={dbname}",
            self.bucket.url,
            self.server_name,
        ]

    def restore(self, backup_id: str, recovery_dir: Path) -> list[str]:
        return [
            tool(RESTORE),
            *self._cloud(),
            self.bucket.url,
            self.server_name,
            backup_id,
            str(recovery_dir),
        ]

    def backup_list(self) -> list[str]:
        return [
            tool(BACKUP_LIST),
            *self._cloud(),
            "--format=json",
            self.bucket.url,
            self.server_name,
        ]

    def backup_delete(self, retention_days: int, *, dry_run: bool = False) -> list[str]:
        policy = f"RECOVERY WINDOW OF {retention_days} DAYS"
        return [
            tool(BACKUP_DELETE),
            *self._cloud(),
            "--retention-policy",
            policy,
            *(["--dry-run"] if dry_run else []),
            self.bucket.url,
            self.server_name,
        ]


def shell_command(argv: list[str], env: Mapping[str, str]) -> str:
    """``argv`` as one ``/bin/sh`` line (PostgreSQL runs archive/restore commands so), with
    ``env`` set through ``env(1)``. ``%p``/``%f`` stay unquoted for PostgreSQL to replace."""
    prefix = ["env", *(f"{k}={v}" for k, v in env.items())] if env else []
    return " ".join(a if a in ("%p", "%f") else shlex.quote(a) for a in [*prefix, *argv])


def archive_parameters(
    target: BackupTarget, dr: BackupTarget | None, archive_timeout_s: int
) -> dict[str, str]:
    """PostgreSQL parameters that ship every WAL segment to ``target`` and, when there is
    one, straight to the DR bucket too (under the DR region's key): the DR copy of the WAL is
    as fresh as the primary's, so a regional failover loses at most ``archive_timeout``.

    A segment counts as archived only once both buckets hold it: if the DR region cannot be
    reached, PostgreSQL keeps the segment and retries (docs/dr.md, "when a step fails").
    ``archive_timeout`` forces a segment switch on an idle system, bounding what a lost
    server can lose. The embedded node's ``settings``, or the Patroni cluster's
    ``postgresql.parameters``."""
    command = shell_command(target.wal_archive(), target.env())
    if dr is not None:
        command = f"{command} && {shell_command(dr.wal_archive(), dr.env())}"
    return {
        "archive_mode": "on",
        "archive_command": command,
        "archive_timeout": str(archive_timeout_s),
        "wal_level": "replica",
    }


def recovery_parameters(
    target: BackupTarget,
    *,
    target_time: str | None = None,
    target_lsn: str | None = None,
) -> dict[str, str]:
    """PostgreSQL parameters of an archive recovery from ``target``'s WAL: to a time, to an
    LSN, or (neither) to the end of the archive; then promote. The restored server archives
    nothing (it must not write into the bucket it was restored from)."""
    if target_time is not None and target_lsn is not None:
        raise ValueError("give a target time or a target LSN, not both")
    params = {
        "restore_command": shell_command(target.wal_restore(), target.env()),
        "archive_mode": "off",
        "recovery_target_timeline": "latest",
    }
    if target_time is not None:
        params |= {"recovery_target_time": target_time, "recovery_target_action": "promote"}
    elif target_lsn is not None:
        params |= {"recovery_target_lsn": target_lsn, "recovery_target_action": "promote"}
    return params
