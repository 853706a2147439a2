"""Schemathesis against a running steadypay (issue 14): `steadypay up` in a scratch data dir on
free loopback ports, then two runs of every operation of /openapi.json with at least
``--examples`` generated cases each: one with the admin key (all operations but the chaos
switch: switching faults on would make the API fail on purpose), one with a user's key.
Checks: no 5xx (``not_a_server_error``) and every response conforming to the schema
(``response_schema_conformance``); prints each run's summary and exits non-zero on a failure.

    .venv/bin/pip install schemathesis   # not a dependency of steadypay
    .venv/bin/python benchmarks/api_fuzz.py [--examples 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

CHECKS = "not_a_server_error,response_schema_conformance"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(url: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/live", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"steadypay did not start within {within_s} s")


def schemathesis(url: str, key: str, examples: int, *extra: str) -> int:
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    argv = [
        st, "run", f"{url}/openapi.json",
        "--header", f"Authorization: Bearer {key}",
        "--max-examples", str(examples),
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing",
        *extra,
    ]  # fmt: skip
    print(
        "$", " ".join(a if not a.startswith("Authorization") else "Authorization: …" for a in argv)
    )
    return subprocess.call(argv, stdin=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="steadypay-fuzz-") as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        up = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "steadypay",
                "up",
                "--data-dir",
                tmp,
                "--port",
                str(port),
                "--fraud-port",
                str(free_port()),
                "--notification-port",
                str(free_port()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(tmp, "up.log"), "wb"),  # noqa: SIM115
            start_new_session=True,
        )
        try:
            wait_ready(url, 180)
            admin = (Path(tmp) / "admin.key").read_text().strip()
            user = httpx.post(
                f"{url}/v1/users",
                json={"name": "Fuzz", "email": "fuzz@example.com"},
                headers={"Authorization": f"Bearer {admin}"},
            ).json()
            admin_rc = schemathesis(url, admin, args.examples, "--exclude-path", "/v1/admin/chaos")
            user_rc = schemathesis(url, user["api_key"], args.examples)
        finally:
            os.killpg(up.pid, signal.SIGTERM)
            up.wait(60)
    print(f"admin run exit {admin_rc}, user run exit {user_rc}")
    return 0 if admin_rc == 0 and user_rc == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
