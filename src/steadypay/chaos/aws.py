"""A local AWS for drills: moto's server on a loopback port, and the two regions' resources
(S3 buckets, KMS keys, a Route 53 zone, an SNS topic) that the DR drill fails over between.

moto comes with the dev extra (``make run`` and ``make test`` install it); without it the
drill says so and stops.
"""

from __future__ import annotations

import importlib.util
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import boto3
import httpx

NOT_INSTALLED = (
    "the DR drill runs against moto's AWS emulator, which is not installed: "
    "pip install -c constraints.txt -e '.[dev]' (make run does)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class AwsEmulator:
    """``python -m moto.server`` on a free loopback port, stopped on exit."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, region: str) -> dict[str, str]:
        """boto3's standard variables pointing at the emulator, dummy credentials only."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(self.directory / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.directory / "no-aws-credentials"),
        }

    def __enter__(self) -> Self:
        if importlib.util.find_spec("moto") is None:
            raise RuntimeError(NOT_INSTALLED)
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "moto.log").open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.url}/moto-api/", timeout=0.5)
                return self
            except httpx.TransportError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"moto did not start: see {self.directory / 'moto.log'}")
            time.sleep(0.05)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True, slots=True)
class TwoRegions:
    """What the DR drill creates: a bucket and a KMS key per region, a hosted zone with the
    API's weighted record pointing at region A, and an SNS topic."""

    primary_region: str
    dr_region: str
    primary_bucket: str
    dr_bucket: str
    primary_key: str
    dr_key: str
    hosted_zone_id: str
    record_name: str
    topic_arn: str

    def settings_env(self) -> dict[str, str]:
        return {
            "STEADYPAY_BACKUP_ENABLED": "true",
            "STEADYPAY_BACKUP_BUCKET_URL": f"s3://{self.primary_bucket}/steadypay",
            "STEADYPAY_BACKUP_REGION": self.primary_region,
            "STEADYPAY_BACKUP_KMS_KEY_ID": self.primary_key,
            "STEADYPAY_BACKUP_DR_BUCKET_URL": f"s3://{self.dr_bucket}/steadypay",
            "STEADYPAY_BACKUP_DR_REGION": self.dr_region,
            "STEADYPAY_BACKUP_DR_KMS_KEY_ID": self.dr_key,
            "STEADYPAY_DR_HOSTED_ZONE_ID": self.hosted_zone_id,
            "STEADYPAY_DR_RECORD_NAME": self.record_name,
            "STEADYPAY_DR_SNS_TOPIC_ARN": self.topic_arn,
        }

    def weights(self) -> dict[str, int]:
        """The API record's weight per region (SetIdentifier), as Route 53 holds them now."""
        found = boto3.client("route53").list_resource_record_sets(HostedZoneId=self.hosted_zone_id)[
            "ResourceRecordSets"
        ]
        return {r["SetIdentifier"]: r["Weight"] for r in found if "SetIdentifier" in r}


def create_two_regions(endpoint: str, primary: str, dr: str, tag: str) -> TwoRegions:
    """Create the drill's resources through boto3 (``AWS_ENDPOINT_URL`` must point at the
    emulator: the caller's environment)."""
    keys = {r: boto3.client("kms", region_name=r).create_key()["KeyMetadata"]["Arn"]
            for r in (primary, dr)}  # fmt: skip
    buckets = {primary: f"steadypay-{tag}-{primary}", dr: f"steadypay-{tag}-{dr}"}
    for region, bucket in buckets.items():
        s3 = boto3.client("s3", region_name=region)
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            where: Any = {"LocationConstraint": region}
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration=where)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    route53 = boto3.client("route53")
    zone = route53.create_hosted_zone(Name="steadypay.test.", CallerReference=tag)
    zone_id = zone["HostedZone"]["Id"].split("/")[-1]
    name = "api.steadypay.test."
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [
        {"Action": "UPSERT", "ResourceRecordSet": {
            "Name": name, "Type": "CNAME", "SetIdentifier": region, "Weight": weight, "TTL": 30,
            "ResourceRecords": [{"Value": f"{region}.api.steadypay.test"}]}}
        for region, weight in ((primary, 100), (dr, 0))]})  # fmt: skip
    topic = boto3.client("sns", region_name=dr).create_topic(Name=f"steadypay-{tag}-dr")
    _ = endpoint
    return TwoRegions(
        primary, dr, buckets[primary], buckets[dr], keys[primary], keys[dr], zone_id, name,
        topic["TopicArn"],
    )  # fmt: skip
