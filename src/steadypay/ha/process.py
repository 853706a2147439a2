"""One member's processes: its Patroni (which we start) and its postmaster (which Patroni
starts, detached: it outlives a killed Patroni and is reparented to init).

A postmaster is never our child, so we cannot reap it: once it has exited, we wait for it to
be a zombie (:func:`~steadypay.db._pgproc.pid_alive` says dead), not for init to reap it.
Patroni (psutil) takes a zombie for a live process, so how fast init reaps is part of how fast
Patroni notices a killed postmaster.

Patroni runs as the server programs do (:class:`~steadypay.db._pgproc.Runner`): directly when
we are not root; as root, in a user namespace where we are an unprivileged uid, or as the
``steadypay`` system account. Patroni then starts PostgreSQL as that same uid. A member found
running at start (its pid file names a live Patroni with its configuration) is reused, so a
second :meth:`~steadypay.ha.cluster.PatroniCluster.start` on the same directory, from this
process or another one, does not start a second Patroni.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from steadypay.db._pgproc import (
    EmbeddedPostgresError,
    Runner,
    clean_env,
    log_tail,
    pid_alive,
    read_pidfile,
    resolve_runner,
)
from steadypay.ha.layout import ClusterError, MemberPaths

_POLL_S = 0.05


def require_patroni() -> None:
    """Fail before starting anything if Patroni or the libraries it needs are missing."""
    missing = [
        m for m in ("patroni", "pysyncobj", "psycopg") if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise ClusterError(
            f"the Patroni cluster needs {', '.join(missing)}, not installed in {sys.prefix}: "
            "install steadypay with its dependencies (patroni[raft], psycopg[binary])."
        )


def member_runner(run_as_root: str, data_dir: Path) -> Runner:
    """How the members' Patroni run here: the embedded PostgreSQL's :class:`Runner`, checked
    to reach ``data_dir`` and, as the system account, our Python and Patroni."""
    try:
        runner = resolve_runner(run_as_root)
        runner.check_reachable(data_dir)
    except EmbeddedPostgresError as exc:
        raise ClusterError(str(exc)) from exc
    if runner.strategy == "user":
        probe = [sys.executable, "-c", "import patroni"]
        if runner.run(probe, timeout=60, check=False).returncode != 0:
            raise ClusterError(
                "Patroni runs as the system user of the embedded PostgreSQL, which cannot run "
                f"{sys.executable} (a virtualenv in a private directory?): install steadypay "
                "where that user can read it, or allow user namespaces "
                "(docs/decisions/0002-embedded-postgres-as-root.md)."
            )
    return runner


class MemberProcess:
    """The Patroni process of one member, and the postmaster it runs."""

    def __init__(self, paths: MemberPaths) -> None:
        self.paths = paths
        self._child: subprocess.Popen[bytes] | None = None

    # --- what runs -------------------------------------------------------------------------

    def patroni_pid(self) -> int | None:
        """The pid of this member's live Patroni, None if it does not run."""
        if self._child is not None:
            self._child.poll()  # reap it if it exited (exited() still tells how)
        try:
            pid = int(self.paths.pidfile.read_text(encoding="utf-8").strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _is_patroni(pid, self.paths.config) else None

    def postmaster_pid(self) -> int | None:
        """The pid of this member's live postmaster, None if it does not run."""
        info = read_pidfile(self.paths.pgdata)
        return info.pid if info is not None and pid_alive(info.pid) else None

    def output_tail(self, lines: int = 30) -> str:
        """The end of Patroni's stdout/stderr and of its log, for error messages."""
        log = self.paths.log_dir / "patroni.log"
        return (
            f"--- end of {self.paths.output} ---\n{log_tail(self.paths.output, lines=lines)}\n"
            f"--- end of {log} ---\n{log_tail(log, lines=lines)}"
        )

    # --- lifecycle -------------------------------------------------------------------------

    def launch(self, runner: Runner) -> int:
        """Start Patroni with this member's configuration, as ``runner`` says; its pid."""
        if self._child is not None and self._child.poll() is None:
            raise ClusterError(f"Patroni {self._child.pid} of {self.paths.root} still runs")
        argv = [*runner.prefix, sys.executable, "-m", "patroni", str(self.paths.config)]
        env = {k: v for k, v in clean_env().items() if not k.startswith("PATRONI_")}
        with self.paths.output.open("ab") as out:
            try:
                self._child = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd="/",
                    env=env,
                    start_new_session=True,  # a Ctrl-C in our terminal is not meant for it
                )
            except OSError as exc:
                raise ClusterError(f"could not start Patroni for {self.paths.root}: {exc}") from exc
        self.paths.pidfile.write_text(f"{self._child.pid}\n", encoding="utf-8")
        return self._child.pid

    def exited(self) -> int | None:
        """The exit code of the Patroni we started, if it has exited (None otherwise)."""
        return None if self._child is None else self._child.poll()

    def terminate(self) -> None:
        """Ask Patroni to stop (SIGTERM), without waiting."""
        if (pid := self.patroni_pid()) is not None:
            _signal(pid, signal.SIGTERM)

    def stop(self, timeout: float, *, postmaster: bool = True) -> None:
        """Stop Patroni (SIGTERM: unless the cluster is paused, it shuts its PostgreSQL down
        first), then, if ``postmaster``, make sure the postmaster is gone too; escalate to
        SIGKILL / immediate shutdown past ``timeout``."""
        deadline = time.monotonic() + timeout
        if (pid := self.patroni_pid()) is not None:
            _signal(pid, signal.SIGTERM)
            if not self._wait_patroni_gone(pid, deadline):
                _signal(pid, signal.SIGKILL)
                self._wait_patroni_gone(pid, time.monotonic() + 10)
        if self._child is not None:  # the Patroni we started: reap it, whatever its pid file said
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._child.wait(timeout=max(deadline - time.monotonic(), 1.0))
            self._child = None if self._child.returncode is not None else self._child
        if postmaster:
            self.stop_postmaster(max(deadline - time.monotonic(), 10.0))

    def stop_postmaster(self, timeout: float) -> None:
        """Fast shutdown of an orphaned postmaster; immediate past ``timeout``; SIGKILL last."""
        if (pid := self.postmaster_pid()) is None:
            return
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0)):
            _signal(pid, sig)
            if _wait(lambda: not pid_alive(pid), wait):
                return
        raise ClusterError(f"postmaster {pid} of {self.paths.pgdata} survived SIGKILL")

    def kill_patroni(self) -> int | None:
        """SIGKILL Patroni (PostgreSQL keeps running); the pid killed, None if none ran."""
        if (pid := self.patroni_pid()) is None:
            return None
        _signal(pid, signal.SIGKILL)
        if not self._wait_patroni_gone(pid, time.monotonic() + 10):
            raise ClusterError(f"Patroni {pid} of {self.paths.root} survived SIGKILL")
        return pid

    def kill_postmaster(self) -> int | None:
        """SIGKILL the postmaster (its backends exit as they notice); the pid, or None."""
        if (pid := self.postmaster_pid()) is None:
            return None
        _signal(pid, signal.SIGKILL)
        if not _wait(lambda: not pid_alive(pid), 10.0):
            raise ClusterError(f"postmaster {pid} of {self.paths.pgdata} survived SIGKILL")
        return pid

    def _wait_patroni_gone(self, pid: int, deadline: float) -> bool:
        def gone() -> bool:
            if self._child is not None and self._child.pid == pid:
                if self._child.poll() is None:
                    return False
                self._child = None  # reaped; an exit we asked for is no failure to report
                return True
            return not _is_patroni(pid, self.paths.config)

        return _wait(gone, max(deadline - time.monotonic(), 0.0))


def _is_patroni(pid: int, config: Path) -> bool:
    """Whether ``pid`` is a live (not zombie) process running Patroni on ``config``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    if stat[stat.rfind(")") + 2 :][:1] in ("Z", "X"):
        return False
    return b"patroni" in cmdline and os.fsencode(config) in cmdline


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition()`` until true or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return bool(condition())
        time.sleep(_POLL_S)
    return True
