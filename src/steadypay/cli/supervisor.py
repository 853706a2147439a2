"""A small process supervisor for `steadypay up`: every service in its own process.

- Children run in their own session, so a Ctrl-C in the terminal reaches only the supervisor,
  which then stops them in reverse start order (SIGTERM, then SIGKILL after a grace period).
- On Linux each child asks the kernel to SIGTERM it if the supervisor dies (PR_SET_PDEATHSIG),
  so a killed supervisor leaves no orphans.
- A child that exits on its own is restarted after an exponential backoff (0.5 s doubling to
  30 s); the backoff resets once it has stayed up for a minute.
- Every state change is printed (started, exited with status, restarting in N s, stopped).
- ``watchdogs`` run on every poll: ``steadypay up`` uses one to restart its embedded
  PostgreSQL if it dies.
- With ``pid_dir``, each running child's pid is in ``<pid_dir>/<name>.pid`` (removed when it
  stops), so operators and chaos experiments can find it.

Why not an off-the-shelf supervisor (supervisord, honcho)? They are configured by files and
run as their own program; `steadypay up` must be one command that also owns the embedded
database's lifetime, and needs only these few rules.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from steadypay.resilience.retry import exponential_s

PR_SET_PDEATHSIG = 1
STABLE_AFTER_S = 60.0


@dataclass(frozen=True, slots=True)
class ChildSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_start_at: float = 0.0
    crashes_in_a_row: int = 0


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        say: Callable[[str], None] = print,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        grace_s: float = 15.0,
        poll_s: float = 0.2,
        pid_dir: Path | None = None,
        watchdogs: Sequence[Callable[[], str | None]] = (),
    ) -> None:
        self.children = [Child(spec) for spec in specs]
        self._watchdogs = watchdogs
        self._pid_dir = pid_dir
        if pid_dir is not None:
            pid_dir.mkdir(parents=True, exist_ok=True)
        self._say = say
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._grace_s = grace_s
        self._poll_s = poll_s
        self._stopping = False

    def request_stop(self, *_: object) -> None:
        self._stopping = True

    def run(self, ready: Callable[[], None] | None = None) -> None:
        """Start every child and watch them until SIGINT/SIGTERM; then stop them all."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for child in self.children:
                self._start(child)
            if ready is not None:
                ready()
            while not self._stopping:
                self._watch(time.monotonic())
                time.sleep(self._poll_s)
        finally:
            self.stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _start(self, child: Child) -> None:
        env = {**os.environ, **child.spec.env}
        child.process = subprocess.Popen(
            list(child.spec.argv),
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        child.started_at = time.monotonic()
        self._write_pid(child)
        self._say(f"  {child.spec.name:<14} started (pid {child.process.pid})")

    def _pid_file(self, child: Child) -> Path | None:
        return None if self._pid_dir is None else self._pid_dir / f"{child.spec.name}.pid"

    def _write_pid(self, child: Child) -> None:
        path = self._pid_file(child)
        if path is not None and child.process is not None:
            path.write_text(f"{child.process.pid}\n")

    def _remove_pid(self, child: Child) -> None:
        path = self._pid_file(child)
        if path is not None:
            path.unlink(missing_ok=True)

    def _watch(self, now: float) -> None:
        for watchdog in self._watchdogs:  # e.g. the embedded database: restart it if it died
            said = watchdog()
            if said:
                self._say(f"  {said}")
        for child in self.children:
            process = child.process
            if process is not None:
                code = process.poll()
                if code is None:
                    if now - child.started_at > STABLE_AFTER_S:
                        child.crashes_in_a_row = 0
                    continue
                child.process = None
                self._remove_pid(child)
                child.crashes_in_a_row += 1
                delay = exponential_s(
                    child.crashes_in_a_row - 1, self._backoff_base_s, self._backoff_cap_s
                )
                child.next_start_at = now + delay
                self._say(
                    f"  {child.spec.name:<14} exited with status {code}; "
                    f"restarting in {delay:.1f} s"
                )
            elif now >= child.next_start_at and not self._stopping:
                child.restarts += 1
                self._start(child)

    def stop_all(self) -> None:
        running = [c for c in reversed(self.children) if c.process and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._grace_s
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._say(f"  {child.spec.name:<14} did not stop in time; killing it")
                child.process.kill()
                child.process.wait()
            self._remove_pid(child)
            self._say(f"  {child.spec.name:<14} stopped")

    def status(self) -> list[tuple[str, str, int | None, int]]:
        """(name, state, pid, restarts) for each child."""
        rows = []
        for child in self.children:
            alive = child.process is not None and child.process.poll() is None
            pid = child.process.pid if alive and child.process else None
            rows.append((child.spec.name, "running" if alive else "restarting", pid,
                         child.restarts))  # fmt: skip
        return rows
