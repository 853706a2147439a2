"""Where a Patroni cluster's members live: their directories, ports and shared secrets.

One cluster directory (``<data_dir>/cluster/`` under ``steadypay up``) holds::

    cluster.json        the layout: scope, host, and each member's name and ports (0644)
    secrets.json        generated passwords: PostgreSQL roles, REST API, Raft (0600)
    .cluster.lock       serialises start/stop across processes
    pg1/ pg2/ pg3/      one directory per member (see MemberPaths)

The layout is written once, when the cluster is created, and read back at every later start:
a member keeps its ports for life, so clients find it where they already look.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from steadypay.db._pgproc import free_port

SUPERUSER = "postgres"
REPLICATION_USER = "replicator"
APP_USER = "steadypay"
REST_USER = "patroni"
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with its terminating NUL


class ClusterError(Exception):
    """The Patroni cluster could not be set up, started, stopped, reached or changed.

    Not a :class:`~steadypay.errors.SteadypayError`: like
    :class:`~steadypay.db.embedded.EmbeddedPostgresError` it never reaches an API client; the
    CLI and the tests report it as it is.
    """

    code = "ha_cluster"


@dataclass(frozen=True)
class MemberSpec:
    """One member's identity and its three loopback ports."""

    name: str
    pg_port: int
    rest_port: int
    raft_port: int


@dataclass(frozen=True)
class ClusterLayout:
    scope: str
    host: str
    members: tuple[MemberSpec, ...]

    def member(self, name: str) -> MemberSpec:
        for spec in self.members:
            if spec.name == name:
                return spec
        known = ", ".join(m.name for m in self.members)
        raise ClusterError(f"no member {name!r} in cluster {self.scope!r} (members: {known})")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ClusterLayout:
        raw = json.loads(text)
        members = tuple(MemberSpec(**m) for m in raw["members"])
        return cls(scope=str(raw["scope"]), host=str(raw["host"]), members=members)

    @classmethod
    def create(
        cls, scope: str, host: str, count: int, base_ports: tuple[int, int, int] | None
    ) -> ClusterLayout:
        """Member ``i`` gets ``base + i`` of each base port; without bases, free ports."""
        members = []
        taken: set[int] = set()
        for i in range(count):
            if base_ports is None:
                ports = [_fresh_port(host, taken) for _ in range(3)]
            else:
                ports = [base + i for base in base_ports]
            members.append(MemberSpec(f"pg{i + 1}", *ports))
        return cls(scope, host, tuple(members))


def _fresh_port(host: str, taken: set[int]) -> int:
    for _ in range(50):
        port = free_port(host)
        if port not in taken:
            taken.add(port)
            return port
    raise ClusterError(f"could not find a free port on {host}")


def load_or_create_layout(
    path: Path, *, scope: str, host: str, count: int, base_ports: tuple[int, int, int] | None
) -> ClusterLayout:
    """The layout stored at ``path``, or a new one stored there; refuses a mismatch."""
    if path.is_file():
        layout = ClusterLayout.from_json(path.read_text(encoding="utf-8"))
        wanted = ClusterLayout.create(scope, host, count, base_ports) if base_ports else None
        if len(layout.members) != count or (wanted is not None and wanted != layout):
            raise ClusterError(
                f"{path.parent} holds a cluster of {len(layout.members)} members created with "
                f"the layout in {path}; it cannot be reused with {count} members"
                + (f" and base ports {base_ports}" if base_ports else "")
                + ": use another data directory, or the same settings as before."
            )
        return layout
    layout = ClusterLayout.create(scope, host, count, base_ports)
    write_file_atomically(path, layout.to_json(), 0o644)
    return layout


@dataclass(frozen=True)
class ClusterSecrets:
    """Generated passwords, shared by all members (each member's Patroni YAML repeats them)."""

    superuser: str
    replication: str
    app: str
    rest: str
    raft: str

    @classmethod
    def load_or_create(cls, path: Path) -> ClusterSecrets:
        if path.is_file():
            raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{k: str(v) for k, v in raw.items()})
        made = cls(*(secrets.token_urlsafe(32) for _ in range(5)))
        write_file_atomically(path, json.dumps(asdict(made), indent=2) + "\n", 0o600)
        return made


class MemberPaths:
    """A member's files, all under ``<cluster dir>/<name>/``."""

    def __init__(self, cluster_dir: Path, name: str, pg_port: int) -> None:
        self.root = cluster_dir / name
        self.config = self.root / "patroni.yml"
        self.pidfile = self.root / "patroni.pid"
        self.output = self.root / "patroni.out"  # Patroni's stdout/stderr: startup failures
        self.log_dir = self.root / "log"  # Patroni's own rotated log, patroni.log
        self.pg_log_dir = self.root / "pglog"  # PostgreSQL's logging collector
        self.pgdata = self.root / "pgdata"
        self.raft_dir = self.root / "raft"
        self.pgpass = self.root / "pgpass"
        self.socket_dir = _socket_dir(self.root / "sock", pg_port)

    def dirs(self) -> tuple[Path, ...]:
        """The directories to create before Patroni starts (it creates pgdata itself)."""
        return (self.root, self.log_dir, self.pg_log_dir, self.raft_dir, self.socket_dir)


def _socket_dir(preferred: Path, port: int) -> Path:
    """``preferred``, unless its socket path would not fit in ``sun_path``: then a private
    directory in the temporary directory named after it."""
    if len(os.fsencode(preferred / f".s.PGSQL.{port}")) <= _SOCKET_PATH_MAX:
        return preferred
    digest = hashlib.sha256(os.fsencode(preferred)).hexdigest()[:16]
    return Path(tempfile.gettempdir(), f"steadypay-ha-{digest}")


def write_file_atomically(path: Path, text: str, mode: int) -> None:
    """Replace ``path`` with ``text``; ``mode`` is set before any byte is written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fd, mode)
        fh.write(text)
    staging.replace(path)
