"""Which database a CLI command talks to: the configured URL, or the embedded cluster."""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from steadypay.config import Settings
from steadypay.db.embedded import EmbeddedPostgres

ADMIN_KEY_FILE = "admin.key"


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    embedded: EmbeddedPostgres | None

    def describe(self) -> str:
        if self.embedded is None:
            return "PostgreSQL at STEADYPAY_DATABASE_URL"
        return (
            f"embedded PostgreSQL on {self.embedded.host}:{self.embedded.port} "
            f"(data in {self.embedded.pgdata})"
        )


def embedded_for(settings: Settings, data_dir: Path) -> EmbeddedPostgres:
    return EmbeddedPostgres(data_dir, bin_dir=settings.pg_bin_dir)


@contextmanager
def database(
    settings: Settings, data_dir: Path, *, stop_if_started: bool = True
) -> Iterator[Target]:
    """Yield the database to use. An embedded cluster that this call started is stopped after,
    one that was already running (say, under `steadypay up`) is left alone."""
    if settings.database_url is not None:
        yield Target(settings.database_url.get_secret_value(), None)
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
