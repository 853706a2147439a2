"""`steadypay ledger check`: audit the ledger, record the outcome; exit 1 on any violation."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.table import Table

from steadypay.cli.database import database
from steadypay.config import Settings
from steadypay.ledger.audit import AuditReport, audit
from steadypay.observability.health import record_ledger_check


async def _audit(url: str) -> AuditReport:
    """Audit, then record the outcome (``steadypay_ledger_check_violations`` reads the last)."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        report = await audit(conn)
        violations = sum(c.violations for c in report.checks)
        if await record_ledger_check(conn, violations, report_json(report)) is None:
            print(
                "warning: the check was not recorded (no observability.ledger_checks table: "
                "run `steadypay migrate`)",
                file=sys.stderr,
            )
        return report
    finally:
        await conn.close()


def run_check(settings: Settings, data_dir: Path, *, as_json: bool) -> bool:
    """Audit the ledger and record the outcome in ``observability.ledger_checks``."""
    with database(settings, data_dir) as target:
        report = asyncio.run(_audit(target.url))
    if as_json:
        print(json.dumps(report_json(report), indent=2, default=str))
        return report.ok
    console = Console()
    table = Table(title="steadypay ledger check")
    table.add_column("check")
    table.add_column("result")
    table.add_column("what it proves")
    for check in report.checks:
        result = "[green]ok[/]" if check.ok else f"[red]{check.violations} violation(s)[/]"
        table.add_row(check.name, result, check.description)
    console.print(table)
    console.print(
        f"{report.wallets} wallets, {report.transfers} transfers, {report.entries} entries audited"
    )
    for check in report.checks:
        for row in check.sample:
            console.print(f"  [red]{check.name}[/]: {row}")
    console.print("[bold green]LEDGER OK[/]" if report.ok else "[bold red]LEDGER VIOLATED[/]")
    return report.ok


def report_json(report: AuditReport) -> dict[str, object]:
    return {
        "ok": report.ok,
        "wallets": report.wallets,
        "transfers": report.transfers,
        "entries": report.entries,
        "checks": [
            {"name": c.name, "ok": c.ok, "violations": c.violations, "sample": c.sample}
            for c in report.checks
        ],
    }
