"""A PostgreSQL cluster of several members on loopback, run by Patroni with its Raft DCS.

:class:`PatroniCluster` writes each member's Patroni configuration
(:mod:`~steadypay.ha.patroni_config`), starts one Patroni per member as a child process
(:mod:`~steadypay.ha.members`), waits for one primary and streaming, synchronous replicas,
creates the ``steadypay`` role and database (:mod:`~steadypay.ha.provision`), and then
observes and drives the cluster through Patroni's REST API (:mod:`~steadypay.ha.rest`).
Patroni decides who the primary is; nothing here promotes or demotes PostgreSQL itself.

Members are daemons like :class:`~steadypay.db.embedded.EmbeddedPostgres`: they outlive the
object that started them, and a later :meth:`PatroniCluster.start` on the same directory
reuses those still running and starts the others on their existing data. All methods block;
call them from a thread inside an event loop. Importing this module does nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self

from steadypay.db._pgproc import DEFAULT_CACHE_DIR
from steadypay.ha import provision
from steadypay.ha.layout import (
    APP_USER,
    SUPERUSER,
    ClusterError,
    ClusterLayout,
    ClusterSecrets,
    MemberPaths,
    load_or_create_layout,
)
from steadypay.ha.members import Members
from steadypay.ha.patroni_config import dcs_settings
from steadypay.ha.process import require_patroni
from steadypay.ha.rest import PatroniRest
from steadypay.ha.status import MemberStatus, build_statuses, describe, readiness_problem, wait_for

_POLL_S = 0.2


class BasePorts(NamedTuple):
    """Member ``i`` (from 0) listens on ``pg + i``, ``rest + i`` and ``raft + i``."""

    pg: int
    rest: int
    raft: int


class PatroniCluster:
    """``members`` PostgreSQL servers under Patroni in ``data_dir`` (e.g. ``<data>/cluster``).

    ``base_ports=None`` picks free ports when the cluster is created; either way the ports
    are stored in ``cluster.json`` and kept for the life of the cluster. ``parameters`` are
    extra PostgreSQL settings for every member. ``run_as_root`` and ``cache_dir`` are as for
    :class:`~steadypay.db.embedded.EmbeddedPostgres` (docs/decisions/0002).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        members: int = 3,
        host: str = "127.0.0.1",
        base_ports: BasePorts | None = None,
        bin_dir: Path | None = None,
        scope: str = "steadypay",
        database: str = "steadypay",
        parameters: Mapping[str, str] | None = None,
        run_as_root: str = "auto",
        cache_dir: Path | None = None,
    ) -> None:
        if members < 2:
            raise ValueError(f"a cluster needs at least 2 members, not {members}")
        if not _is_ipv4_loopback(host):
            raise ValueError(f"host must be an IPv4 loopback address (127.0.0.0/8), not {host!r}")
        self.data_dir = Path(data_dir).absolute()
        self.database = database
        self._count, self._host, self._scope, self._base_ports = members, host, scope, base_ports
        self._bin_dir, self._parameters = bin_dir, dict(parameters or {})
        self._run_as_root, self._cache_dir = run_as_root, cache_dir or DEFAULT_CACHE_DIR
        self._layout: ClusterLayout | None = None
        self._secrets: ClusterSecrets | None = None
        self._members: Members | None = None
        self._rest: PatroniRest | None = None

    @property
    def layout_file(self) -> Path:
        return self.data_dir / "cluster.json"

    @property
    def secrets_file(self) -> Path:
        return self.data_dir / "secrets.json"

    @property
    def layout(self) -> ClusterLayout:
        """The members and their ports (the cluster must have been started once)."""
        if self._layout is None:
            if not self.layout_file.is_file():
                raise ClusterError(f"no cluster in {self.data_dir}: start() creates one")
            self._layout = ClusterLayout.from_json(self.layout_file.read_text(encoding="utf-8"))
        return self._layout

    def paths(self, member: str) -> MemberPaths:
        return self.processes[member].paths

    @property
    def processes(self) -> Members:
        """The members' processes (``processes["pg1"].patroni_pid()``...)."""
        if self._members is None:
            self._members = Members(
                self.data_dir,
                self.layout,
                bin_dir=self._bin_dir,
                parameters=self._parameters,
                run_as_root=self._run_as_root,
                cache_dir=self._cache_dir,
            )
        return self._members

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> list[MemberStatus]:
        """Start every member not running, wait until the cluster is ready, and create the
        database and its owner role if missing. The members' statuses.

        Also leaves the maintenance mode :meth:`stop` entered, and brings the DCS's dynamic
        configuration (kept from the cluster's bootstrap) up to date with
        :func:`~steadypay.ha.patroni_config.dcs_settings`.
        """
        deadline = time.monotonic() + timeout
        require_patroni()
        with self._locked():
            self._layout = load_or_create_layout(
                self.layout_file,
                scope=self._scope,
                host=self._host,
                count=self._count,
                base_ports=self._base_ports,
            )
            secrets = self._secrets = ClusterSecrets.load_or_create(self.secrets_file)
            for spec in self.layout.members:
                self.processes.launch(spec.name, secrets)
            if self._paused_marker.exists():
                self._rest_client().resume(self.layout.members, deadline)
                self._paused_marker.unlink()
            self.wait_ready(deadline - time.monotonic())
            primary = self.layout.member(self.primary().name)
            self._rest_client().patch_config(primary, dcs_settings())
            bin_dir, host = self.processes.client_bin_dir, self.layout.host
            remaining = max(deadline - time.monotonic(), 15.0)
            provision.ensure_app_database(
                bin_dir, host, primary.pg_port, secrets, self.database, remaining
            )
            ports = [m.pg_port for m in self.layout.members]
            provision.wait_until_everywhere(bin_dir, host, ports, secrets, self.database, deadline)
        return self.status()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop every member; nothing if nothing runs. Escalates to SIGKILL past
        ``timeout``: no process is left behind.

        The cluster is paused first (Patroni's maintenance mode, in the DCS): the members'
        Patroni then exit without acting, no replica takes over from the stopping primary, and
        we shut the postmasters down ourselves, the primary first so that the replicas receive
        its shutdown checkpoint. The next :meth:`start` resumes the cluster. Without a Raft
        quorum to pause, each Patroni stops its own PostgreSQL (slower: the primary retries to
        release its key).
        """
        if not self.layout_file.is_file():
            return
        deadline = time.monotonic() + timeout
        with self._locked():
            primary = next((s.name for s in self.status() if s.role == "primary"), None)
            order = sorted(self.layout.members, key=lambda spec: spec.name != primary)
            procs = [self.processes[spec.name] for spec in order]
            running = [m for m, p in zip(order, procs, strict=True) if p.patroni_pid() is not None]
            if running and self._rest_client().pause(running, min(10.0, timeout / 4)) is not None:
                self._paused_marker.touch()
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.stop(max(deadline - time.monotonic(), 5.0), postmaster=False)
            for proc in procs:
                proc.stop_postmaster(max(deadline - time.monotonic(), 5.0))
        self.close()

    def close(self) -> None:
        """Release this object's HTTP connections; the members keep running."""
        if self._rest is not None:
            self._rest.close()
            self._rest = None

    def restart_member(self, member: str, timeout: float = 90.0) -> MemberStatus:
        """Stop ``member`` (if it runs) and start it again; its status once it runs again
        as a primary or a streaming replica."""
        deadline = time.monotonic() + timeout
        with self._locked():
            self.processes[member].stop(timeout / 2)
            self.processes.launch(member, self._secrets_())

        def back(statuses: list[MemberStatus]) -> bool:
            return any(
                s.name == member and s.role is not None and s.state in ("running", "streaming")
                for s in statuses
            )

        statuses = wait_for(self.status, f"{member} to run again", back, deadline)
        return next(s for s in statuses if s.name == member)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- observing -------------------------------------------------------------------------

    def status(self) -> list[MemberStatus]:
        """Every member as it is now (a few loopback HTTP calls, each with a deadline)."""
        layout, rest = self.layout, self._rest_client()
        states = {spec.name: rest.member_state(spec) for spec in layout.members}
        view = rest.cluster_view(layout.members)
        pids = {spec.name: self.processes.pids(spec.name) for spec in layout.members}
        return build_statuses(layout, states, view, pids)

    def primary(self) -> MemberStatus:
        """The primary; :class:`ClusterError` if there is none right now (a failover)."""
        statuses = self.status()
        primaries = [s for s in statuses if s.role == "primary"]
        if len(primaries) != 1:
            raise ClusterError(f"no single primary: {describe(statuses)}")
        return primaries[0]

    def wait_ready(self, timeout: float = 60.0) -> list[MemberStatus]:
        """Wait until there is one primary and every other member is a streaming,
        synchronous replica on its timeline."""
        deadline = time.monotonic() + timeout
        while (problem := readiness_problem(statuses := self.status())) is not None:
            if (failure := self.processes.failure()) is not None:
                raise ClusterError(failure)
            if time.monotonic() >= deadline:
                unwell = [s.name for s in statuses if s.state not in ("running", "streaming")]
                raise ClusterError(
                    f"cluster not ready within {timeout:g} s: {problem}\n"
                    + self.processes.output_tails(unwell or [s.name for s in statuses])
                )
            time.sleep(_POLL_S)
        return statuses

    # --- connecting ------------------------------------------------------------------------

    def dsn(self, database: str | None = None, user: str = APP_USER) -> str:
        """A libpq multi-host URL over every member that connects to the primary only
        (``target_session_attrs=read-write``); asyncpg, libpq and SQLAlchemy read it."""
        ports = [m.pg_port for m in self.layout.members]
        password, db = self._password(user), database or self.database
        return provision.multi_host_dsn(self.layout.host, ports, user, password, db)

    def member_dsn(
        self,
        member: str,
        database: str | None = None,
        user: str = APP_USER,
        target_session_attrs: str | None = None,
    ) -> str:
        """A URL of one member, whatever its role unless ``target_session_attrs`` says."""
        port, password = self.layout.member(member).pg_port, self._password(user)
        db, host = database or self.database, self.layout.host
        return provision.member_dsn(host, port, user, password, db, target_session_attrs)

    def replica_dsns(self, database: str | None = None, user: str = APP_USER) -> list[str]:
        """One URL per current replica; each refuses to connect to a member no longer in
        recovery (``target_session_attrs=standby``)."""
        return [
            self.member_dsn(s.name, database, user, target_session_attrs="standby")
            for s in self.status()
            if s.role == "replica"
        ]

    # --- faults and operations -------------------------------------------------------------

    def kill_postmaster(self, member: str) -> int:
        """SIGKILL ``member``'s postmaster (its Patroni lives on); the pid killed."""
        pid = self.processes[member].kill_postmaster()
        if pid is None:
            raise ClusterError(f"the postmaster of {member} is not running")
        return pid

    def kill_node(self, member: str) -> tuple[int | None, int | None]:
        """SIGKILL ``member``'s Patroni, then its postmaster, as if the machine were lost;
        ``(patroni pid, postmaster pid)`` killed. :meth:`restart_member` brings it back."""
        proc = self.processes[member]
        return proc.kill_patroni(), proc.kill_postmaster()

    def switchover(self, candidate: str | None = None, timeout: float = 60.0) -> str:
        """Ask Patroni to hand the primary role over (to ``candidate``, or to the replica it
        picks) with a clean demotion; the new primary's name once it accepts writes."""
        deadline = time.monotonic() + timeout
        old = self.primary()
        if candidate is not None:
            self.layout.member(candidate)
        spec = self.layout.member(old.name)
        self._rest_client().switchover(spec, leader=old.name, candidate=candidate)
        return self._wait_new_primary(old.name, candidate, deadline)

    def failover(self, candidate: str, timeout: float = 60.0) -> str:
        """Ask Patroni to promote ``candidate`` now (for when the primary is unhealthy);
        its name once it is the primary."""
        deadline = time.monotonic() + timeout
        spec = self.layout.member(candidate)
        old = next((s.name for s in self.status() if s.role == "primary"), None)
        self._rest_client().failover(spec, candidate)
        return self._wait_new_primary(old, candidate, deadline)

    # --- internals -------------------------------------------------------------------------

    @property
    def _paused_marker(self) -> Path:
        """Present while the cluster is paused by :meth:`stop`, for :meth:`start` to resume."""
        return self.data_dir / "paused-by-stop"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise start/stop of this cluster across processes."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / ".cluster.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _rest_client(self) -> PatroniRest:
        if self._rest is None:
            self._rest = PatroniRest(self.layout, self._secrets_().rest)
        return self._rest

    def _secrets_(self) -> ClusterSecrets:
        if self._secrets is None:
            if not self.secrets_file.is_file():
                raise ClusterError(f"no {self.secrets_file}: start() creates it")
            self._secrets = ClusterSecrets.load_or_create(self.secrets_file)
        return self._secrets

    def superuser_password(self) -> str:
        """The ``postgres`` role's password (backups connect as it; docs/dr.md)."""
        return self._password(SUPERUSER)

    def _password(self, user: str) -> str:
        passwords = {SUPERUSER: self._secrets_().superuser, APP_USER: self._secrets_().app}
        if user not in passwords:
            raise ClusterError(f"no password for {user!r}; known users: {sorted(passwords)}")
        return passwords[user]

    def _wait_new_primary(self, old: str | None, wanted: str | None, deadline: float) -> str:
        def done(statuses: list[MemberStatus]) -> bool:
            primaries = [s.name for s in statuses if s.role == "primary"]
            return len(primaries) == 1 and primaries[0] != old and wanted in (None, primaries[0])

        statuses = wait_for(self.status, f"a new primary (was {old})", done, deadline)
        return next(s.name for s in statuses if s.role == "primary")


def _is_ipv4_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.version == 4 and address.is_loopback
