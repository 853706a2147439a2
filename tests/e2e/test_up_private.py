"""`steadypay up` leaks nothing by the way (issue 14, finding 10): no ``Server`` header, and
the server log and the metrics directories are its own account's only."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_up import server  # noqa: F401 -- the running `steadypay up`

pytestmark = pytest.mark.e2e


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_no_server_header(server: tuple[str, Path]) -> None:  # noqa: F811
    base, _ = server
    for path in ("/health/live", "/v1/no-such-route"):
        response = httpx.get(f"{base}{path}", timeout=10)
        assert "server" not in response.headers, response.headers


def test_the_server_log_and_the_metrics_are_private(server: tuple[str, Path]) -> None:  # noqa: F811
    _, data_dir = server
    assert _mode(data_dir / "postgres.log") == 0o600
    for service in ("api", "fraud", "notifications"):
        assert _mode(data_dir / "metrics" / service) == 0o700, service
