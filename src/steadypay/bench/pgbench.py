"""PostgreSQL's own TPC-B (``pgbench``) on the bench's server: the ceiling a ledger on this
machine is measured against.

TPC-B is a bank transfer: update an account, a teller and a branch, read the account, insert a
history row, commit (durably: the server keeps ``fsync`` and ``synchronous_commit`` on). It runs
in a database of its own (``pgbench``) on the same server as steadypay's, with ``-M prepared``
and per-transaction logs (``-l``) from which the percentiles come.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DATABASE = "pgbench"


@dataclass(frozen=True, slots=True)
class PgbenchResult:
    tps: float
    transactions: int
    failed: int
    latencies_ms: list[float]
    seconds: float
    cpu_s: float
    """pgbench's own CPU seconds (the load generator of this phase)"""


def database_url(url: str, database: str = DATABASE) -> str:
    """``url`` with its database replaced by ``database``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def initialise(bin_dir: Path, admin_url: str, scale: int, timeout_s: float = 300) -> None:
    """Create the ``pgbench`` database (again) and load it at ``scale``."""
    psql = str(bin_dir / "psql")
    for sql in (f"DROP DATABASE IF EXISTS {DATABASE}", f"CREATE DATABASE {DATABASE}"):
        subprocess.run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", admin_url, "-c", sql],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    subprocess.run(
        [str(bin_dir / "pgbench"), "-i", "-q", "-s", str(scale), database_url(admin_url)],
        check=True, capture_output=True, timeout=timeout_s,
    )  # fmt: skip


def run(bin_dir: Path, admin_url: str, clients: int, duration_s: float) -> PgbenchResult:
    """``pgbench -c clients -j 2 -T duration -M prepared`` with per-transaction logs."""
    threads = min(2, clients)
    with tempfile.TemporaryDirectory(prefix="steadypay-pgbench-") as tmp:
        prefix = Path(tmp) / "tx"
        argv = [
            str(bin_dir / "pgbench"), "-n", "-c", str(clients), "-j", str(threads),
            "-T", str(max(1, round(duration_s))), "-M", "prepared",
            "-l", f"--log-prefix={prefix}", database_url(admin_url),
        ]  # fmt: skip
        with (Path(tmp) / "out").open("w+") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
            # wait4, not wait: its rusage is pgbench's CPU alone
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            text = out.read()
        if process.returncode != 0:
            raise RuntimeError(f"pgbench failed ({process.returncode}): {text[-2000:]}")
        latencies = _log_latencies(Path(tmp))
    return PgbenchResult(
        tps=_number(r"tps = ([\d.]+) \(without initial connection time\)", text),
        transactions=int(_number(r"number of transactions actually processed: (\d+)", text)),
        failed=int(_number(r"number of failed transactions: (\d+)", text, default=0)),
        latencies_ms=latencies,
        seconds=float(max(1, round(duration_s))),
        cpu_s=usage.ru_utime + usage.ru_stime,
    )


def _number(pattern: str, text: str, default: float | None = None) -> float:
    found = re.search(pattern, text)
    if found is None:
        if default is not None:
            return default
        raise RuntimeError(f"pgbench output lacks {pattern!r}: {text[-2000:]}")
    return float(found.group(1))


def _log_latencies(directory: Path) -> list[float]:
    """Per-transaction latencies (ms) from pgbench's ``-l`` logs: each line is
    ``client_id transaction_no time_us script_no time_epoch time_us_fraction``."""
    latencies: list[float] = []
    for log in directory.glob("tx*"):
        for line in log.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                latencies.append(int(fields[2]) / 1000)
    return latencies
