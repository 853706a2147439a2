"""Starting steadypay's processes as a user would, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

STEADYPAY = str(Path(sys.executable).with_name("steadypay"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any STEADYPAY_ configuration (the embedded default), plus
    ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEADYPAY_")}
    env.update(extra)
    return env


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, within_s: float = 90) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited: {log.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready in {within_s} s: {log.read_text()}")


@contextmanager
def running(
    argv: list[str], log: Path, env: Mapping[str, str], ready_url: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``steadypay <argv>``; stop it with SIGINT (as Ctrl-C would) at the end."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [STEADYPAY, *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
        )
    try:
        if ready_url:
            wait_ready(ready_url, proc, log)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def gone_or_zombie(pid: int, within_s: float) -> bool:
    """True once ``pid`` has exited (a zombie awaiting its reaper counts as exited)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def child_pids(parent: int, marker: str) -> list[int]:
    """Descendants of ``parent`` whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if marker in cmdline and _descends(int(entry.name), parent, int(stat[1])):
            found.append(int(entry.name))
    return found


def _descends(pid: int, ancestor: int, ppid: int) -> bool:
    while ppid > 1:
        if ppid == ancestor:
            return True
        try:
            ppid = int(Path(f"/proc/{ppid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError):
            return False
    return False
