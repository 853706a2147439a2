"""A throwaway AWS emulator for tests: moto's server (``moto_server``, from ``moto[server]``) on
a free loopback port, in its own process, stopped (SIGTERM, then wait) at teardown.

boto3 reaches it through its standard ``AWS_ENDPOINT_URL``; :func:`aws_env` sets that and
dummy credentials, so no real AWS account, profile or instance metadata is ever used.

Without moto installed, :meth:`MotoServer.start` skips the test with the reason to install the
dev extra.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.redis_server import free_port

NOT_INSTALLED = (
    "moto is not installed: install the dev extra "
    "(pip install -c constraints.txt -e '.[dev]') to run the CloudWatch export tests"
)


class MotoServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> None:
        if importlib.util.find_spec("moto") is None:
            pytest.skip(NOT_INSTALLED)
        self.directory.mkdir(parents=True, exist_ok=True)
        log_path = self.directory / "moto.log"
        with log_path.open("ab") as log_file:  # the child keeps its own descriptor
            self._process = subprocess.Popen(
                # moto_server's entry point, run by this interpreter (no PATH lookup)
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=0.5) as http:
            while True:
                try:
                    http.get(f"{self.url}/moto-api/")
                    return
                except httpx.TransportError:
                    pass
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.05)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def aws_env(monkeypatch: pytest.MonkeyPatch, endpoint_url: str, tmp_path: Path) -> None:
    """Point boto3's standard chain at ``endpoint_url`` with dummy credentials only."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_CLOUDWATCH", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
