"""Application state beside the database: configuration, deployment manifests and secrets.

Layout, in the server's folder of a bucket (every object also SSE-KMS at rest)::

    appstate/<id>/config.json     the settings without their secrets (plain: nothing secret)
    appstate/<id>/files/<path>    deployment manifests and other non-secret files
    appstate/<id>/secrets.bin     the secrets: AES-256-GCM, nonce (12 bytes) + ciphertext
    appstate/<id>/envelope.json   the data key, wrapped by KMS in each region, and the AAD
    appstate/<id>/manifest.json   SHA-256 and size of every object above (the last written)

**Envelope encryption.** Each backup asks KMS in the primary region for a fresh 256-bit data
key (``GenerateDataKey``), encrypts the secrets with it (``cryptography``'s AESGCM, the
backup id and config digest as associated data), and stores the key only wrapped: once by the
primary region's key (the blob GenerateDataKey returned) and once by the DR region's key
(``Encrypt`` there), so the DR region can decrypt with the primary region gone. The plain
data key lives in memory for the call only. Restoring checks every object against the
manifest first, then unwraps the key with the region it restores in.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets as random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from steadypay.backup import store
from steadypay.backup.commands import BackupTarget
from steadypay.backup.errors import BackupError, BackupStoreError, VerificationFailed

if TYPE_CHECKING:
    from types_boto3_kms.client import KMSClient

FORMAT = 1
_NONCE_BYTES = 12


@dataclass(frozen=True, slots=True)
class AppState:
    """What one application-state backup holds, before encryption."""

    config: Mapping[str, Any]
    """Settings without secrets (JSON-able)."""
    secrets: Mapping[str, str]
    """Name -> value: secret settings and secret files (admin key, database passwords)."""
    files: Mapping[str, bytes]
    """Relative path -> content: deployment manifests and other non-secret files."""


@dataclass(frozen=True, slots=True)
class AppStateBackup:
    backup_id: str
    objects: int
    secrets: int
    files: int

    def as_json(self) -> dict[str, Any]:
        return {
            "app_state_id": self.backup_id,
            "objects": self.objects,
            "secrets": self.secrets,
            "files": self.files,
        }


def kms_client(region: str | None) -> KMSClient:
    return boto3.client("kms", region_name=region, config=store.CONFIG)


def backup_app_state(
    state: AppState, primary: BackupTarget, dr: BackupTarget | None, *, backup_id: str | None = None
) -> AppStateBackup:
    """Store ``state`` in the primary bucket (and the DR bucket), secrets envelope-encrypted."""
    if primary.kms_key_id is None or (dr is not None and dr.kms_key_id is None):
        raise BackupError(
            "the application state's secrets need a KMS key in every region: set "
            "STEADYPAY_BACKUP_KMS_KEY_ID (and STEADYPAY_BACKUP_DR_KMS_KEY_ID)"
        )
    ident = backup_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    config = json.dumps(state.config, indent=2, sort_keys=True, default=str).encode()
    aad = _aad(ident, config)
    try:
        generated = kms_client(primary.region).generate_data_key(
            KeyId=primary.kms_key_id, KeySpec="AES_256", EncryptionContext=_context(ident)
        )
        data_key = generated["Plaintext"]
        wrapped = {primary.region or "default": _b64(generated["CiphertextBlob"])}
        if dr is not None:
            assert dr.kms_key_id is not None
            blob = kms_client(dr.region).encrypt(
                KeyId=dr.kms_key_id, Plaintext=data_key, EncryptionContext=_context(ident)
            )["CiphertextBlob"]
            wrapped[dr.region or "default"] = _b64(blob)
    except (BotoCoreError, ClientError) as exc:
        raise BackupStoreError(f"KMS refused a data key for the application state: {exc}") from exc
    nonce = random.token_bytes(_NONCE_BYTES)
    sealed = nonce + AESGCM(data_key).encrypt(
        nonce, json.dumps(dict(state.secrets), sort_keys=True).encode(), aad
    )
    del data_key
    envelope = {
        "format": FORMAT,
        "algorithm": "AES-256-GCM",
        "aad": "sha256(app_state_id NUL config.json)",
        "wrapped_keys": wrapped,
        "secret_names": sorted(state.secrets),
    }
    objects: dict[str, bytes] = {
        "config.json": config,
        "secrets.bin": sealed,
        "envelope.json": json.dumps(envelope, indent=2, sort_keys=True).encode(),
        **{f"files/{path}": content for path, content in sorted(state.files.items())},
    }
    manifest = {
        "format": FORMAT,
        "app_state_id": ident,
        "created_at": datetime.now(UTC).isoformat(),
        "objects": {name: _digest(body) for name, body in objects.items()},
    }
    objects["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode()
    for target in (primary, *([dr] if dr is not None else [])):
        for name, body in objects.items():
            store.put_bytes(target, f"appstate/{ident}/{name}", body)
    return AppStateBackup(ident, len(objects), len(state.secrets), len(state.files))


def latest_app_state(target: BackupTarget) -> str | None:
    """The newest application-state backup's id in ``target`` (a complete one: with its
    manifest, written last); None if there is none."""
    folder = f"{store.server_folder(target)}/appstate/"
    client = store.s3_client(target.region)
    ids = sorted(
        o.key[len(folder) :].split("/", 1)[0]
        for o in store.list_objects(client, target.bucket.bucket, folder)
        if o.key.endswith("/manifest.json")
    )
    return ids[-1] if ids else None


def restore_app_state(target: BackupTarget, backup_id: str | None = None) -> AppState:
    """Read an application-state backup from ``target``, check every object against its
    manifest, and decrypt the secrets with ``target``'s region's KMS key.
    :class:`VerificationFailed` if anything is missing, altered or does not decrypt."""
    ident = backup_id or latest_app_state(target)
    if ident is None:
        raise BackupError(f"no application-state backup in {target.bucket.url}")
    prefix = f"appstate/{ident}/"
    manifest_body = store.get_bytes(target, prefix + "manifest.json")
    if manifest_body is None:
        raise VerificationFailed(f"application state {ident} has no manifest", None)
    manifest = json.loads(manifest_body)
    bodies: dict[str, bytes] = {}
    for name, expected in sorted(manifest["objects"].items()):
        body = store.get_bytes(target, prefix + name)
        if body is None:
            raise VerificationFailed(f"application state {ident}: {name} is missing", None)
        if _digest(body) != expected:
            raise VerificationFailed(
                f"application state {ident}: {name} does not match its checksum", None
            )
        bodies[name] = body
    envelope = json.loads(bodies["envelope.json"])
    wrapped = envelope["wrapped_keys"].get(target.region or "default")
    if wrapped is None:
        raise BackupError(
            f"application state {ident} has no data key wrapped for region {target.region}"
        )
    try:
        data_key = kms_client(target.region).decrypt(
            CiphertextBlob=base64.b64decode(wrapped), EncryptionContext=_context(ident)
        )["Plaintext"]
    except (BotoCoreError, ClientError) as exc:
        raise BackupStoreError(f"KMS refused the application state's data key: {exc}") from exc
    sealed = bodies["secrets.bin"]
    try:
        plain = AESGCM(data_key).decrypt(
            sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _aad(ident, bodies["config.json"])
        )
    except InvalidTag as exc:
        raise VerificationFailed(
            f"application state {ident}: secrets do not decrypt", None
        ) from exc
    files = {n[len("files/") :]: b for n, b in bodies.items() if n.startswith("files/")}
    return AppState(json.loads(bodies["config.json"]), json.loads(plain), files)


def write_secret_file(path: Path, value: str) -> None:
    """Write one restored secret, readable by its owner only (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(fd, 0o600)
        handle.write(value if value.endswith("\n") else value + "\n")


def _context(ident: str) -> dict[str, str]:
    return {"steadypay:app-state": ident}


def _aad(ident: str, config: bytes) -> bytes:
    return hashlib.sha256(ident.encode() + b"\0" + config).digest()


def _digest(body: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}


def _b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode("ascii")
