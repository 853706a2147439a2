"""Throwaway Redis servers for tests: a private ``redis-server`` on a free loopback port, no
persistence, stopped (SIGTERM, then wait) at teardown. The machine's own Redis (6379) is never
used.

In a test module::

    from tests.redis_server import redis_url_fixture

    redis_url = redis_url_fixture()  # a session-scoped fixture named ``redis_url``

Without a ``redis-server`` on PATH the fixture skips with the reason to install Redis. For a
server the test stops and restarts itself, use :class:`RedisServer` directly.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pytest

NOT_FOUND = (
    "redis-server not found on PATH: install Redis (e.g. apt-get install redis-server) "
    "to run the shared-breaker tests"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def redis_server_binary() -> str:
    """The path of ``redis-server``, or skip the test with a clear reason."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(NOT_FOUND)
    return binary


def ping(port: int, timeout_s: float = 0.2) -> bool:
    """True if a Redis server answers PING on the loopback ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process; ``start``/``stop`` may be repeated (same port, empty data:
    nothing is saved)."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port if port is not None else free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        if self.running:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        log_file = self.directory / "redis.log"
        # fmt: off
        command = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(log_file),
        ]
        # fmt: on
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout_s
        while not ping(self.port):
            if self._process.poll() is not None:
                _, err = self._process.communicate()
                self._process = None
                log = log_file.read_text() if log_file.exists() else ""
                raise RuntimeError(f"redis-server exited: {err.decode()} {log[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()


@contextmanager
def running_redis(directory: Path, port: int | None = None) -> Iterator[RedisServer]:
    """A started server, stopped on exit. Without a port, a free one (retried if taken)."""
    for attempt in range(3):
        server = RedisServer(directory, port)
        try:
            server.start()
        except RuntimeError:
            if port is not None or attempt == 2:
                raise
            continue  # the free port was taken in between: pick another
        break
    try:
        yield server
    finally:
        server.stop()


def redis_url_fixture(
    scope: Literal["session", "package", "module", "class", "function"] = "session",
    name: str = "redis_url",
) -> Callable[..., Iterator[str]]:
    """A fixture named ``name`` yielding the URL of a private Redis started for its scope."""

    @pytest.fixture(scope=scope, name=name)
    def _redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
        with running_redis(tmp_path_factory.mktemp("redis")) as server:
            yield server.url

    return _redis_url
