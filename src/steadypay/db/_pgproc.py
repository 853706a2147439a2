"""Process plumbing for :mod:`steadypay.db.embedded`: running PostgreSQL programs, and as whom.

PostgreSQL's server programs (initdb, pg_ctl, postgres) refuse to run as root. A
:class:`Runner` decides how they run (docs/decisions/0002-embedded-postgres-as-root.md):

``direct``
    We are not root: run them as they are.
``userns``
    We are root: run them in a new user namespace in which we are uid 1000. Files keep their
    owner (root) on the host and look like ours inside: no account, no chown, no chmod.
``user``
    We are root and user namespaces are unavailable: run them as the system user
    ``steadypay``, which owns the cluster's files. If it cannot reach the binaries (a venv
    under ``/root``), they are copied once to a shared cache.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SERVER_USER = "steadypay"
DEFAULT_CACHE_DIR = Path("/var/cache/steadypay")
USERNS_PREFIX = ("unshare", "--user", "--map-user=1000", "--map-group=1000", "--")
_PROBE_TIMEOUT = 15.0

Strategy = Literal["direct", "userns", "user"]
Arg = str | os.PathLike[str]
Cmd = subprocess.CompletedProcess[str]


class EmbeddedPostgresError(Exception):
    """The embedded PostgreSQL cluster could not be set up, started, stopped or reached.

    Not a :class:`~steadypay.errors.SteadypayError`: it never reaches an API client; the CLI
    and the tests report it as it is.
    """

    code = "embedded_postgres"


def clean_env(**extra: str) -> dict[str, str]:
    """Our environment minus libpq's ``PG*`` variables, which would override explicit options."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(extra)
    return env


def run(
    argv: Sequence[Arg],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion in ``/``; :class:`EmbeddedPostgresError` if it cannot.

    Output goes to temporary files, not pipes: the postmaster ``pg_ctl start`` leaves behind
    could inherit a pipe and keep us waiting for its end forever.
    """
    args = [os.fspath(a) for a in argv]
    command = shlex.join(args)
    with (
        tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as out,
        tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as err,
    ):
        try:
            proc = subprocess.run(
                args,
                input=input_text,
                stdin=subprocess.DEVNULL if input_text is None else None,
                stdout=out,
                stderr=err,
                text=True,
                cwd="/",
                env=clean_env() if env is None else dict(env),
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedPostgresError(f"`{command}` did not finish in {timeout:g} s") from exc
        except OSError as exc:
            raise EmbeddedPostgresError(f"could not run `{command}`: {exc}") from exc
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(args, proc.returncode, out.read(), err.read())
    if check and result.returncode != 0:
        said = (result.stderr.strip() or result.stdout.strip())[-2000:]
        raise EmbeddedPostgresError(f"`{command}` failed with exit code {proc.returncode}:\n{said}")
    return result


def accepts_connections(bin_dir: Path, host: str, port: int) -> bool:
    argv: list[Arg] = [
        bin_dir / "pg_isready",
        "--quiet",
        f"--host={host}",
        f"--port={port}",
        "--timeout=2",
    ]
    return run(argv, timeout=10, check=False).returncode == 0


_CREATE_DATABASE = (
    "SELECT format('CREATE DATABASE %I', :'db')"
    " WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\\gexec\n"
)


def ensure_database(
    bin_dir: Path, host: str, port: int, user: str, password: str, *, database: str, timeout: float
) -> None:
    """Create ``database`` unless it exists (``%I`` quotes its name, psql's ``:'db'`` too)."""
    conn = [f"--host={host}", f"--port={port}", f"--username={user}", "--dbname=postgres"]
    options = ["--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", f"--set=db={database}"]
    env = clean_env(PGPASSWORD=password, PGCONNECT_TIMEOUT="10")
    run([bin_dir / "psql", *options, *conn], input_text=_CREATE_DATABASE, env=env, timeout=timeout)


def log_tail(path: Path, offset: int = 0, lines: int = 30) -> str:
    """The last ``lines`` lines of ``path`` written after byte ``offset``."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log file)"
    return "\n".join(text.splitlines()[-lines:]) or "(nothing logged)"


@dataclass(frozen=True)
class PidFile:
    """What the postmaster wrote to ``postmaster.pid``, PostgreSQL's own lock file."""

    pid: int
    port: int | None  # None while the postmaster is still writing the file
    status: str  # "starting", "ready", "standby", "stopping", or "" early on


def read_pidfile(pgdata: Path) -> PidFile | None:
    try:
        lines = (pgdata / "postmaster.pid").read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not lines or not lines[0].strip().isdigit():
        return None
    port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
    return PidFile(int(lines[0]), port, lines[7].strip() if len(lines) > 7 else "")


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """``(command name, state letter)`` of ``pid`` from /proc, None if it has no entry."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return text[text.find("(") + 1 : text.rfind(")")], text[text.rfind(")") + 2]


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live ``postgres`` process (not a zombie, not a recycled pid)."""
    if Path("/proc/self/stat").exists():
        proc = _proc_stat(pid)
        return proc is not None and proc[0] == "postgres" and proc[1] not in "ZX"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap(pid: int, timeout: float) -> None:
    """Wait up to ``timeout`` for the zombie of a dead postmaster to go, reaping it if ours.

    PostgreSQL takes a zombie's pid in a stale ``postmaster.pid`` for a live server and
    refuses to start. ``pg_ctl`` leaves the postmaster to init, which may reap slowly or, as
    PID 1 in a container, may be us.
    """
    deadline = time.monotonic() + timeout
    while _proc_stat(pid) == ("postgres", "Z"):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if time.monotonic() >= deadline:
            return
        time.sleep(0.05)


def free_port(host: str) -> int:
    """A TCP port nobody listens on at ``host`` right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Runner:
    """How the server programs run; ``uid``/``gid`` own their files (-1: leave them alone)."""

    strategy: Strategy
    prefix: tuple[str, ...] = ()
    uid: int = -1
    gid: int = -1

    def run(self, argv: Sequence[Arg], *, timeout: float, check: bool = True) -> Cmd:
        return run([*self.prefix, *argv], timeout=timeout, check=check)

    def give(self, *paths: Path) -> None:
        """Hand ``paths`` to the account the server runs as (root's in a user namespace)."""
        if self.uid >= 0:
            for path in paths:
                os.chown(path, self.uid, self.gid)

    def adopt(self, pgdata: Path) -> None:
        """Own a cluster another strategy created (PostgreSQL insists on owning its files)."""
        if self.uid < 0 or pgdata.stat().st_uid == self.uid:
            return
        for root, dirs, files in os.walk(pgdata):
            os.chown(root, self.uid, self.gid)
            for name in [*dirs, *files]:
                os.chown(Path(root, name), self.uid, self.gid, follow_symlinks=False)

    def can_execute(self, bin_dir: Path) -> bool:
        """Whether the server programs in ``bin_dir`` start (and find their libraries)."""
        names = ("initdb", "pg_ctl", "postgres")
        probes = (
            self.run([bin_dir / n, "--version"], timeout=_PROBE_TIMEOUT, check=False) for n in names
        )
        return all(probe.returncode == 0 for probe in probes)

    def check_reachable(self, data_dir: Path) -> None:
        """Fail with instructions if the server user cannot traverse to ``data_dir``."""
        if self.strategy != "user":
            return
        if self.run(["test", "-x", data_dir], timeout=_PROBE_TIMEOUT, check=False).returncode == 0:
            return
        blocker = _first_untraversable(data_dir, self.uid, self.gid)
        raise EmbeddedPostgresError(
            f"PostgreSQL runs as the unprivileged system user {SERVER_USER!r} "
            f"(run_as_root='user'), which cannot reach {data_dir}: {blocker} "
            f"(mode {stat.filemode(blocker.stat().st_mode)}) does not let it pass. Use a data "
            "directory outside private directories such as /root (for example "
            f"/var/lib/steadypay), or allow the passage yourself with `chmod o+x {blocker}`; "
            "steadypay never changes the permissions of your directories."
        )


def _first_untraversable(path: Path, uid: int, gid: int) -> Path:
    for candidate in [*reversed(path.parents), path]:
        st = candidate.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return candidate
    return path


def userns_problem() -> str | None:
    """None if commands can run in a user namespace here, else why they cannot."""
    if shutil.which("unshare") is None:
        return "`unshare` (util-linux) is not installed"
    try:
        probe = run([*USERNS_PREFIX, "true"], timeout=_PROBE_TIMEOUT, check=False)
    except EmbeddedPostgresError as exc:
        return str(exc)
    if probe.returncode == 0:
        return None
    return probe.stderr.strip() or f"exit code {probe.returncode}"


def resolve_runner(run_as_root: str) -> Runner:
    """The :class:`Runner` for this process; ``run_as_root`` matters only when we are root."""
    if os.geteuid() != 0:
        return Runner("direct")
    if run_as_root in ("auto", "userns"):
        problem = userns_problem()
        if problem is None:
            return Runner("userns", USERNS_PREFIX, uid=0, gid=0)
        if run_as_root == "userns":
            raise EmbeddedPostgresError(
                f"run_as_root='userns' needs user namespaces, but `{shlex.join(USERNS_PREFIX)} "
                f"true` failed: {problem}. Use run_as_root='user' (or 'auto') instead."
            )
    account = ensure_server_user()
    setpriv = ("setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}")
    return Runner("user", (*setpriv, "--init-groups", "--"), account.pw_uid, account.pw_gid)


def ensure_server_user() -> pwd.struct_passwd:
    """The ``steadypay`` system account, created (no home, no login shell) if missing."""
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        pass
    argv = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
    result = run([*argv, SERVER_USER], timeout=60, check=False)
    try:  # a concurrent process may have created it: look again rather than trust the exit code
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise EmbeddedPostgresError(
            f"could not create the system user {SERVER_USER!r} to run PostgreSQL as root: "
            f"{result.stderr.strip()}"
        ) from None


def reachable_bin_dir(runner: Runner, bin_dir: Path, cache_dir: Path) -> Path:
    """``bin_dir`` if the runner can execute its server programs, else a copy in ``cache_dir``."""
    if runner.strategy != "user" or runner.can_execute(bin_dir):
        return bin_dir
    cached = copy_to_cache(bin_dir, cache_dir)
    if not runner.can_execute(cached):
        raise EmbeddedPostgresError(
            f"copied the PostgreSQL binaries to {cached}, but the user {SERVER_USER!r} still "
            f"cannot run them; every directory above {cache_dir} must allow others to pass "
            "(mode o+x)."
        )
    return cached


def copy_to_cache(bin_dir: Path, cache_dir: Path) -> Path:
    """Copy the installation around ``bin_dir`` to a world-readable, root-owned cache, once.

    The programs find ``lib`` and ``share`` relative to ``bin``, and pgserver's wheel links the
    client library from ``<prefix>/../../pgserver.libs`` (auditwheel's ``$ORIGIN`` rpath), so
    the copy keeps that layout: ``postgresql-<version>/pgserver/pginstall/{bin,lib,share}``
    beside ``postgresql-<version>/pgserver.libs``.
    """
    version = run([bin_dir / "postgres", "--version"], timeout=_PROBE_TIMEOUT).stdout.split()[-1]
    prefix = bin_dir.parent
    layout = Path(prefix.parent.name, prefix.name)
    target = cache_dir / f"postgresql-{version}"
    if (target / layout / bin_dir.name / "postgres").is_file():
        return target / layout / bin_dir.name
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache_dir.chmod(0o755)  # a cache others must read
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=cache_dir))
    try:
        for part in (bin_dir.name, "lib", "share"):
            shutil.copytree(prefix / part, staging / layout / part, symlinks=True)
        libs = prefix.parent.parent / f"{prefix.parent.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / libs.name, symlinks=True)
        for root, _, files in os.walk(staging):
            os.chmod(root, 0o755)  # noqa: S103 - readable by all is the point of the cache
            for name in files:
                path = Path(root, name)
                if not path.is_symlink():
                    mode = path.stat().st_mode
                    path.chmod(mode | 0o444 | (0o111 if mode & stat.S_IXUSR else 0))
        try:
            staging.rename(target)
        except OSError:  # another process finished first; its copy is as good as ours
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / layout / bin_dir.name
