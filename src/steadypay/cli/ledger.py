"""`steadypay ledger check`: audit the ledger, record the outcome; exit 1 on any violation."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from steadypay.bootstrap.tools import audit_and_record
from steadypay.cli.database import database
from steadypay.config import Settings
from steadypay.ledger.audit import report_json


def run_check(settings: Settings, data_dir: Path, *, as_json: bool) -> bool:
    """Audit the ledger and record the outcome in ``observability.ledger_checks``."""
    with database(settings, data_dir) as target:
        report = asyncio.run(audit_and_record(target.url))
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
