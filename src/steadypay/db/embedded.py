"""A local PostgreSQL cluster run from the binaries the ``pgserver`` wheel ships.

``steadypay up`` uses it when no database URL is configured, and the test suite for
throwaway clusters. One steadypay data directory holds one cluster::

    data_dir/
      pgdata/         the cluster (initdb)
      postgres.log    the server log (pg_ctl -l), mode 0600
      pg-password     the superuser's password, mode 0600

The server is a daemon: it outlives the process that started it, and a later
:meth:`EmbeddedPostgres.start` on the same data directory reuses it. It listens on TCP only
(``unix_socket_directories=''``: socket paths are limited to 107 bytes) and requires
scram-sha-256 password authentication from every client. How the server programs run when
we are root is :mod:`steadypay.db._pgproc`'s business.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import math
import os
import secrets
import shlex
import shutil
import signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Self
from urllib.parse import quote

from steadypay.db._pgproc import (
    DEFAULT_CACHE_DIR,
    EmbeddedPostgresError,
    Runner,
    accepts_connections,
    ensure_database,
    free_port,
    log_tail,
    pid_alive,
    reachable_bin_dir,
    read_pidfile,
    reap,
    resolve_runner,
)

__all__ = ["DEFAULT_SETTINGS", "EmbeddedPostgres", "EmbeddedPostgresError", "default_bin_dir"]

SUPERUSER = "postgres"

#: Passed to every start; ``settings`` override them. Replication-ready, durable (fsync and
#: synchronous_commit stay at PostgreSQL's defaults, on).
DEFAULT_SETTINGS: Mapping[str, str] = MappingProxyType(
    {
        "wal_level": "replica",
        "max_wal_senders": "10",
        "max_replication_slots": "10",
        "max_connections": "200",
        "shared_buffers": "128MB",
    }
)

_STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
_RUN_AS_ROOT = ("auto", "userns", "user")
_INITDB_TIMEOUT = 300.0


def default_bin_dir() -> Path:
    """``pgserver``'s ``pginstall/bin``, found without importing pgserver (its import acts)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise EmbeddedPostgresError(
            "the embedded PostgreSQL needs the 'pgserver' package, which is not installed: "
            "install steadypay with its dependencies (`make run` does), or configure a "
            "database URL (STEADYPAY_DATABASE_URL) to use a PostgreSQL server of your own."
        )
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise EmbeddedPostgresError(
            f"pgserver is installed but {bin_dir} holds no PostgreSQL binaries; reinstall it "
            "with `pip install --force-reinstall pgserver`."
        )
    return bin_dir


class EmbeddedPostgres:
    """The PostgreSQL cluster of one steadypay data directory.

    ``port=None`` picks a free loopback port at each start. ``run_as_root`` ("auto",
    "userns" or "user") chooses how the server runs when we are root; see
    docs/decisions/0002-embedded-postgres-as-root.md. ``cache_dir`` is where the "user"
    strategy copies binaries its account cannot reach.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        database: str = "steadypay",
        bin_dir: Path | None = None,
        settings: Mapping[str, str] | None = None,
        run_as_root: str = "auto",
        cache_dir: Path | None = None,
    ) -> None:
        if run_as_root not in _RUN_AS_ROOT:
            raise ValueError(f"run_as_root must be one of {_RUN_AS_ROOT}, not {run_as_root!r}")
        self.data_dir = Path(data_dir).absolute()
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.data_dir / "postgres.log"
        self.password_file = self.data_dir / "pg-password"
        self.host = host
        self.database = database
        self.settings: dict[str, str] = dict(settings or {})
        self._requested_port = port
        self._last_port = port
        self._bin_dir = bin_dir
        self._run_as_root = run_as_root
        self._cache_dir = cache_dir or DEFAULT_CACHE_DIR
        self._runner: Runner | None = None
        self._server_bin_dir: Path | None = None

    # --- state -----------------------------------------------------------------------------

    @property
    def bin_dir(self) -> Path:
        """Where the client programs (psql, pg_isready, pg_basebackup...) are."""
        if self._bin_dir is None:
            self._bin_dir = default_bin_dir()
        return self._bin_dir

    @property
    def runner(self) -> Runner:
        """How the server programs run here (resolved on first use: it may probe or useradd)."""
        if self._runner is None:
            self._runner = resolve_runner(self._run_as_root)
        return self._runner

    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").is_file()

    def is_running(self) -> bool:
        info = read_pidfile(self.pgdata)
        return info is not None and pid_alive(info.pid)

    @property
    def port(self) -> int:
        """The running server's port, else the requested or last used one."""
        info = read_pidfile(self.pgdata)
        if info is not None and info.port is not None and pid_alive(info.pid):
            return info.port
        if self._last_port is None:
            raise EmbeddedPostgresError(f"{self.pgdata} is not running and has no port yet")
        return self._last_port

    @property
    def url(self) -> str:
        """The superuser's URL of ``database``."""
        return self.superuser_url(self.database)

    def superuser_url(self, database: str = "postgres") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        password = quote(self._password(), safe="")
        return f"postgresql://{SUPERUSER}:{password}@{host}:{self.port}/{quote(database, safe='')}"

    def pin_port(self) -> None:
        """Keep the port the server runs on now for every later start, so that a restart
        (after a crash) is found where clients already look."""
        self._requested_port = self.port

    # --- lifecycle -------------------------------------------------------------------------

    def init(self) -> None:
        """Create the cluster with a new random superuser password, unless it exists."""
        with self._locked():
            if self.initialised():
                return
            if self.pgdata.exists() and any(self.pgdata.iterdir()):
                raise EmbeddedPostgresError(
                    f"{self.pgdata} is not empty but holds no PostgreSQL cluster (no "
                    "PG_VERSION); move it away to let steadypay create a new one."
                )
            self.runner.check_reachable(self.data_dir)
            initdb = self._server_bin() / "initdb"
            self._write_password(secrets.token_urlsafe(32))
            # initdb into a staging directory renamed at the end: a crash leaves no half cluster.
            staging = self.data_dir / ".pgdata-initdb"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(mode=0o700)
            self.runner.give(staging, self.password_file)
            cluster = [f"--pgdata={staging}", f"--username={SUPERUSER}", "--auth=scram-sha-256"]
            options = [f"--pwfile={self.password_file}", "--encoding=UTF8", "--locale=C"]
            try:
                argv = [str(initdb), *cluster, *options, "--no-instructions"]
                self.runner.run(argv, timeout=_INITDB_TIMEOUT)
                staging.replace(self.pgdata)
            finally:
                shutil.rmtree(staging, ignore_errors=True)

    def start(self, timeout: float = 60.0) -> None:
        """Start the cluster, or reuse it if it runs; then create ``database`` if missing."""
        deadline = time.monotonic() + timeout
        with self._locked():
            if not self.initialised():
                raise EmbeddedPostgresError(f"no cluster in {self.pgdata}; call init() first")
            launched = False
            while (port := self._wait_until_ready(deadline)) is None:
                if launched:  # it died at once: the log says why
                    raise EmbeddedPostgresError(
                        f"PostgreSQL in {self.pgdata} stopped while starting\n"
                        f"--- end of {self.log_file} ---\n{log_tail(self.log_file)}"
                    )
                self._launch(timeout)  # not running, or just dying (killed, crashed)
                launched = True
            remaining = max(deadline - time.monotonic(), 10.0)
            args = (self.host, port, SUPERUSER, self._password())
            ensure_database(self.bin_dir, *args, database=self.database, timeout=remaining)

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> None:
        """Shut the server down ("smart", "fast" or "immediate"); nothing if it is not running."""
        if mode not in _STOP_SIGNALS:
            raise ValueError(f"mode must be one of {tuple(_STOP_SIGNALS)}, not {mode!r}")
        if not self.pgdata.is_dir():
            return
        with self._locked():
            self._stop(mode, timeout)

    def __enter__(self) -> Self:
        self.init()
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- internals -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise init/start/stop of this data directory across processes."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / ".embedded-postgres.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _server_bin(self) -> Path:
        if self._server_bin_dir is None:
            self._server_bin_dir = reachable_bin_dir(self.runner, self.bin_dir, self._cache_dir)
        return self._server_bin_dir

    def _password(self) -> str:
        try:
            return self.password_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise EmbeddedPostgresError(
                f"no password file {self.password_file}; call init() first"
            ) from None

    def _write_password(self, password: str) -> None:
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fd, 0o600)
            fh.write(password + "\n")

    def _private_log(self) -> None:
        """The server log, readable by its owner only (it holds statements and client
        addresses): created 0600, and an older one made so."""
        fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)

    def _launch(self, timeout: float) -> None:
        runner, pg_ctl = self.runner, self._server_bin() / "pg_ctl"
        runner.check_reachable(self.data_dir)
        runner.adopt(self.pgdata)
        self._private_log()
        runner.give(self.log_file)
        if (stale := read_pidfile(self.pgdata)) is not None:
            reap(stale.pid, min(timeout / 2, 10.0))
        for attempt in range(1, 4):
            port = self._requested_port or free_port(self.host)
            options = {
                **DEFAULT_SETTINGS,
                **self.settings,
                "port": str(port),
                "listen_addresses": self.host,
                "unix_socket_directories": "",
            }
            log_offset = self.log_file.stat().st_size
            settings = " ".join(f"-c {shlex.quote(f'{k}={v}')}" for k, v in options.items())
            wait = ["--wait", f"--timeout={max(1, math.ceil(timeout))}"]
            files = [f"--pgdata={self.pgdata}", f"--log={self.log_file}"]
            argv = [str(pg_ctl), "start", *wait, *files, f"--options={settings}"]
            result = runner.run(argv, timeout=timeout + 15, check=False)
            if result.returncode == 0:
                self._last_port = port
                return
            log = log_tail(self.log_file, log_offset)
            self._stop("immediate", 30.0)  # leave no half-started server behind
            # Retry if someone took the free port we picked, or if processes of a server that
            # was killed still hold its shared memory (they exit as they notice).
            port_taken = self._requested_port is None and "could not bind" in log
            if attempt < 3 and (port_taken or "is still in use" in log):
                time.sleep(0.5 * attempt)
                continue
            said = (result.stderr.strip() or result.stdout.strip())[-1000:]
            raise EmbeddedPostgresError(
                f"PostgreSQL in {self.pgdata} did not start (pg_ctl exit code "
                f"{result.returncode}): {said}\n--- end of {self.log_file} ---\n{log}"
            )

    def _wait_until_ready(self, deadline: float) -> int | None:
        """The port once the server accepts connections; None if no server is running."""
        while True:
            info = read_pidfile(self.pgdata)
            if info is None or not pid_alive(info.pid):
                return None
            if info.port is not None and accepts_connections(self.bin_dir, self.host, info.port):
                self._last_port = info.port
                return info.port
            if time.monotonic() >= deadline:
                raise EmbeddedPostgresError(
                    f"PostgreSQL in {self.pgdata} does not accept connections at {self.host}:"
                    f"{info.port}\n--- end of {self.log_file} ---\n{log_tail(self.log_file)}"
                )
            time.sleep(0.1)

    def _stop(self, mode: str, timeout: float) -> None:
        info = read_pidfile(self.pgdata)
        if info is None or not pid_alive(info.pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, _STOP_SIGNALS[mode])  # what pg_ctl stop does; works for any runner
        deadline = time.monotonic() + timeout
        while pid_alive(info.pid):
            if time.monotonic() >= deadline:
                raise EmbeddedPostgresError(
                    f"PostgreSQL (pid {info.pid}) did not stop within {timeout:g} s in {mode!r} "
                    "mode; try stop(mode='immediate')"
                )
            time.sleep(0.05)
        reap(info.pid, 0)
