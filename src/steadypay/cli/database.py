"""Which database a CLI command talks to: the configured URL, the Patroni cluster that
`steadypay up --db-nodes N` runs in the data directory, or the embedded single node."""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from steadypay.config import Settings
from steadypay.db.embedded import EmbeddedPostgres

if TYPE_CHECKING:  # steadypay.ha is imported only where a cluster is used (startup time)
    from steadypay.ha import PatroniCluster

ADMIN_KEY_FILE = "admin.key"
CLUSTER_DIR = "cluster"  # <data_dir>/cluster: the members of `up --db-nodes N`


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    embedded: EmbeddedPostgres | None
    cluster: PatroniCluster | None = None

    def describe(self) -> str:
        if self.cluster is not None:
            members = len(self.cluster.layout.members)
            return f"{members} PostgreSQL members under Patroni (in {self.cluster.data_dir})"
        if self.embedded is None:
            return "PostgreSQL at STEADYPAY_DATABASE_URL"
        return (
            f"embedded PostgreSQL on {self.embedded.host}:{self.embedded.port} "
            f"(data in {self.embedded.pgdata})"
        )


def embedded_for(settings: Settings, data_dir: Path) -> EmbeddedPostgres:
    """The embedded node of ``data_dir``; archiving WAL to the backup buckets when backups
    are on (STEADYPAY_BACKUP_ENABLED, docs/dr.md)."""
    return EmbeddedPostgres(
        data_dir, bin_dir=settings.pg_bin_dir, settings=_archive_settings(settings)
    )


def cluster_for(settings: Settings, data_dir: Path, members: int = 3) -> PatroniCluster:
    """The Patroni cluster of ``data_dir`` (``<data_dir>/cluster``), started or not; its
    members archive WAL (the primary does; standbys only once promoted) with backups on."""
    from steadypay.ha import PatroniCluster

    return PatroniCluster(
        data_dir / CLUSTER_DIR,
        members=members,
        bin_dir=settings.pg_bin_dir,
        parameters=_archive_settings(settings),
    )


def _archive_settings(settings: Settings) -> dict[str, str]:
    if not settings.backup_enabled:
        return {}
    from steadypay.bootstrap.backup import archive_settings  # boto3: only when backups are on

    return archive_settings(settings)


def has_cluster(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds a Patroni cluster (``up --db-nodes N`` created one)."""
    return (data_dir / CLUSTER_DIR / "cluster.json").is_file()


@contextmanager
def database(
    settings: Settings,
    data_dir: Path,
    *,
    stop_if_started: bool = True,
    prefer_cluster: bool = True,
) -> Iterator[Target]:
    """Yield the database to use: STEADYPAY_DATABASE_URL if set; else, with
    ``prefer_cluster``, the Patroni cluster in ``data_dir`` if it runs (or if there is no
    embedded node beside it); else the embedded node. A database that this call started is
    stopped after, one that was already running (say, under `steadypay up`) is left alone."""
    if settings.database_url is not None:
        yield Target(settings.database_url.get_secret_value(), None)
        return
    if prefer_cluster and has_cluster(data_dir):
        ha = cluster_for(settings, data_dir)
        members = len(ha.layout.members)
        running = any(s.patroni_pid is not None for s in ha.status())
        if running or not embedded_for(settings, data_dir).initialised():
            ha = cluster_for(settings, data_dir, members)
            if not running:
                ha.start()
            try:
                yield Target(ha.dsn(), None, ha)
            finally:
                if stop_if_started and not running:
                    ha.stop()
                ha.close()
            return
    cluster = embedded_for(settings, data_dir)
    was_running = cluster.is_running()
    cluster.init()
    cluster.start()
    try:
        yield Target(cluster.url, cluster)
    finally:
        if stop_if_started and not was_running:
            cluster.stop()


@contextmanager
def exclusive(data_dir: Path) -> Iterator[None]:
    """Hold the data directory for one `steadypay up` at a time."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "up.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(
                f"another `steadypay up` is using {data_dir}; stop it or pick another --data-dir"
            ) from None
        yield


def admin_key_path(data_dir: Path) -> Path:
    return data_dir / ADMIN_KEY_FILE


def load_or_create_admin_key(data_dir: Path) -> str:
    """The admin key stored in the data directory (mode 0600), made on first use."""
    path = admin_key_path(data_dir)
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    data_dir.mkdir(parents=True, exist_ok=True)
    key = "sp_admin_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    os.chmod(path, 0o600)
    return key


def read_admin_key(settings: Settings, data_dir: Path) -> str | None:
    if settings.admin_key is not None:
        return settings.admin_key.get_secret_value()
    path = admin_key_path(data_dir)
    return path.read_text().strip() if path.exists() else None
