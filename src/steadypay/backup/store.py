"""S3 beside barman-cloud: the DR copy, and steadypay's records next to the backups.

**WAL reaches the DR bucket from archive_command itself** (decision 0009): each segment is
archived to both buckets, each under its own region's KMS key. **Base backups and records are
copied by a copy job**, :func:`sync_to_dr`, after each backup (``backup run``, the agent) and
at any time (``backup sync-dr``): moto accepts ``put_bucket_replication`` (with versioning)
and returns the configuration but copies no object, so S3 replication could not be proven
here. The job lists the primary folder and copies (server-side, multipart for large objects)
every object the DR bucket lacks, re-encrypted with ``ServerSideEncryption='aws:kms'`` under
the DR region's key. It is idempotent: each copy carries the source's ETag and size in its
metadata, and an object whose copy already carries them is skipped. With real S3, Cross-Region
Replication can replace it: the layout is the same.

Records (``ledger/<backup_id>.json``, ``verifications/<backup_id>.json``, ``appstate/...``
in the server's folder) are written with the bucket's SSE-KMS key like the backups.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from steadypay.backup.commands import BackupTarget
from steadypay.backup.errors import BackupStoreError

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

CONFIG = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 5, "mode": "standard"})
SOURCE_ETAG = "steadypay-source-etag"
SOURCE_SIZE = "steadypay-source-size"


def s3_client(region: str | None) -> S3Client:
    """A client of the region's S3; endpoint and credentials from boto3's standard chain."""
    return boto3.client("s3", region_name=region, config=CONFIG)


def resolved_endpoint(region: str | None) -> str | None:
    """The S3 endpoint boto3 uses (``AWS_ENDPOINT_URL`` if set), for barman-cloud's
    ``--endpoint-url``; None when it is AWS's own (barman-cloud finds that itself)."""
    url = s3_client(region).meta.endpoint_url
    return None if url.endswith(".amazonaws.com") else url


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    etag: str
    size: int


def server_folder(target: BackupTarget) -> str:
    return target.bucket.key(target.server_name)


def list_objects(client: S3Client, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                yield ObjectInfo(obj["Key"], obj["ETag"].strip('"'), obj["Size"])
    except (BotoCoreError, ClientError) as exc:
        raise BackupStoreError(f"could not list s3://{bucket}/{prefix}: {exc}") from exc


def _encryption(target: BackupTarget) -> dict[str, str]:
    if target.kms_key_id:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": target.kms_key_id}
    return {}


def put_json(target: BackupTarget, name: str, document: dict[str, Any]) -> str:
    body = json.dumps(document, indent=2, sort_keys=True, default=str).encode()
    return put_bytes(target, name, body, content_type="application/json")


def put_bytes(
    target: BackupTarget, name: str, body: bytes, content_type: str = "application/octet-stream"
) -> str:
    """Write ``name`` (relative to the server's folder) under the bucket's SSE-KMS key."""
    key = f"{server_folder(target)}/{name}"
    try:
        s3_client(target.region).put_object(
            Bucket=target.bucket.bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            **_encryption(target),  # type: ignore[arg-type]
        )
    except (BotoCoreError, ClientError) as exc:
        raise BackupStoreError(f"could not write s3://{target.bucket.bucket}/{key}: {exc}") from exc
    return key


def get_bytes(target: BackupTarget, name: str) -> bytes | None:
    """The object ``name`` in the server's folder; None if there is none."""
    key = f"{server_folder(target)}/{name}"
    try:
        return (
            s3_client(target.region).get_object(Bucket=target.bucket.bucket, Key=key)["Body"].read()
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise BackupStoreError(f"could not read s3://{target.bucket.bucket}/{key}: {exc}") from exc
    except BotoCoreError as exc:
        raise BackupStoreError(f"could not read s3://{target.bucket.bucket}/{key}: {exc}") from exc


def get_json(target: BackupTarget, name: str) -> dict[str, Any] | None:
    """The JSON object ``name`` in the server's folder; None if there is none."""
    body = get_bytes(target, name)
    if body is None:
        return None
    document: dict[str, Any] = json.loads(body)
    return document


def backup_manifest(target: BackupTarget, backup_id: str) -> dict[str, dict[str, Any]]:
    """Key (relative to the server's folder) -> ETag and size of the base backup's objects."""
    folder = f"{server_folder(target)}/"
    client = s3_client(target.region)
    prefix = f"{folder}base/{backup_id}/"
    return {
        o.key[len(folder) :]: {"etag": o.etag, "size": o.size}
        for o in list_objects(client, target.bucket.bucket, prefix)
    }


@dataclass(frozen=True, slots=True)
class SyncReport:
    copied: int
    skipped: int
    bytes_copied: int

    def as_json(self) -> dict[str, int]:
        return {"copied": self.copied, "skipped": self.skipped, "bytes_copied": self.bytes_copied}


def sync_to_dr(primary: BackupTarget, dr: BackupTarget, *, dry_run: bool = False) -> SyncReport:
    """Copy every object of the primary server folder the DR folder lacks (see the module);
    ``dry_run``: count them only."""
    source = s3_client(primary.region)
    dest = s3_client(dr.region)
    src_folder, dst_folder = f"{server_folder(primary)}/", f"{server_folder(dr)}/"
    copied = skipped = nbytes = 0
    for obj in list_objects(source, primary.bucket.bucket, src_folder):
        key = dst_folder + obj.key[len(src_folder) :]
        if _already_copied(dest, dr.bucket.bucket, key, obj):
            skipped += 1
            continue
        if dry_run:
            copied, nbytes = copied + 1, nbytes + obj.size
            continue
        extra = {
            **_encryption(dr),
            "Metadata": {SOURCE_ETAG: obj.etag, SOURCE_SIZE: str(obj.size)},
            "MetadataDirective": "REPLACE",
        }
        try:
            dest.copy(
                {"Bucket": primary.bucket.bucket, "Key": obj.key},
                dr.bucket.bucket,
                key,
                ExtraArgs=extra,
                SourceClient=source,
            )
        except (BotoCoreError, ClientError) as exc:
            raise BackupStoreError(
                f"could not copy s3://{primary.bucket.bucket}/{obj.key} to "
                f"s3://{dr.bucket.bucket}/{key}: {exc}"
            ) from exc
        copied += 1
        nbytes += obj.size
    return SyncReport(copied, skipped, nbytes)


def _already_copied(client: S3Client, bucket: str, key: str, obj: ObjectInfo) -> bool:
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise BackupStoreError(f"could not read s3://{bucket}/{key}: {exc}") from exc
    meta = head.get("Metadata", {})
    return meta.get(SOURCE_ETAG) == obj.etag and meta.get(SOURCE_SIZE) == str(obj.size)


def is_copy_of(target: BackupTarget, key: str, expected: dict[str, Any]) -> bool:
    """Whether the object ``key`` (relative to the server's folder) is :func:`sync_to_dr`'s
    copy of an object with ``expected`` ETag and size (a copy's own ETag may differ)."""
    bucket, full = target.bucket.bucket, f"{server_folder(target)}/{key}"
    info = ObjectInfo(full, str(expected.get("etag")), int(expected.get("size", -1)))
    return _already_copied(s3_client(target.region), bucket, full, info)
