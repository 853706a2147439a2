"""`steadypay chaos bank`: the bank workload against a running steadypay, then the checker."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console
from rich.table import Table

from steadypay.chaos.bank import BankClient, BankOptions, BankRun, run_workload
from steadypay.chaos.checker import CHECKS, Verdict, check


async def bank(
    url: str,
    admin_key: str,
    database_url: str,
    options: BankOptions,
    *,
    history: Path | None,
    notifications: bool,
    notify_within_s: float,
) -> tuple[BankRun, Verdict]:
    client = BankClient(url, admin_key, options)
    try:
        run = await run_workload(client, options, history)
        conn = await asyncpg.connect(database_url, timeout=10)
        try:
            verdict = await check(
                client, run, conn, notifications=notifications, notify_within_s=notify_within_s
            )
        finally:
            await conn.close()
    finally:
        await client.aclose()
    return run, verdict


def print_verdict(run: BankRun, verdict: Verdict, console: Console | None = None) -> None:
    console = console or Console()
    counts = verdict.counts
    console.print(
        f"{counts['attempted']} operations in {run.duration_s:.1f} s over "
        f"{len(run.setup.wallets)} wallets: {counts['acknowledged']} acknowledged, "
        f"{counts['failed']} failed, {counts['unknown']} unknown "
        f"({counts['duplicates']} concurrent duplicates, {counts['reuses']} key reuses)"
    )
    if verdict.resolutions:
        console.print(f"unknown operations resolved: {verdict.resolutions}")
    table = Table(title="steadypay chaos bank: money-safety checks")
    table.add_column("check")
    table.add_column("result")
    for name in CHECKS:
        if name in verdict.skipped:
            table.add_row(name, f"[yellow]skipped[/] ({verdict.skipped[name]})")
            continue
        found = [v for v in verdict.violations if v.check == name]
        table.add_row(name, "[green]ok[/]" if not found else f"[red]{len(found)} violation(s)[/]")
    console.print(table)
    for v in verdict.violations[:50]:
        console.print(f"  [red]{v.check}[/]: {v.message}" + (f" (ops {v.ops})" if v.ops else ""))
    console.print("[bold green]BANK OK[/]" if verdict.ok else "[bold red]BANK VIOLATED[/]")


def write_json(path: Path, run: BankRun, verdict: Verdict) -> None:
    body = verdict.json() | {"duration_s": round(run.duration_s, 3), "wallets": run.setup.wallets}
    path.write_text(json.dumps(body, indent=2) + "\n")


def run_bank(
    url: str,
    admin_key: str,
    database_url: str,
    options: BankOptions,
    *,
    history: Path | None,
    report: Path | None,
    notifications: bool,
    notify_within_s: float,
) -> bool:
    run, verdict = asyncio.run(
        bank(
            url,
            admin_key,
            database_url,
            options,
            history=history,
            notifications=notifications,
            notify_within_s=notify_within_s,
        )
    )
    print_verdict(run, verdict)
    if report is not None:
        write_json(report, run, verdict)
    return verdict.ok


def describe_details(details: dict[str, Any]) -> str:
    """One line of what a cluster experiment observed (failover, routing, read-your-writes)."""
    parts = []
    if "killed" in details:
        parts.append(f"{details['killed']} killed")
    if "partitioned" in details:
        parts.append(f"{details['partitioned']} partitioned off")
    if "new_primary" in details:
        parts.append(f"{details['new_primary']} primary {details['failover_s']:.1f} s after")
    if details.get("lagging"):
        parts.append(f"replay paused on {details['lagging']}")
    if "read_your_writes" in details:
        ryw = details["read_your_writes"]
        parts.append(
            f"{ryw['token_reads']} reads with the token, {ryw['token_reads_missed']} missed "
            f"their write; {ryw['tokenless_reads']} without, {ryw['tokenless_reads_stale']} stale"
        )
    if "router_decisions_settled" in details:
        decided = ", ".join(f"{k}={n}" for k, n in details["router_decisions_settled"].items())
        parts.append(f"router once lag > bound (primary {details.get('primary')}): {decided}")
    return "; ".join(parts)


def run_experiments(
    selected: list[str],
    *,
    quick: bool,
    data_dir: Path | None,
    report: Path | None,
    options: BankOptions,
    api_workers: int,
) -> bool:
    from steadypay.chaos.suite import outcomes_json, run_suite

    console = Console(width=None if sys.stdout.isatty() else 150)
    console.print(
        f"steadypay chaos: {len(selected)} experiment(s){' (quick)' if quick else ''}: "
        + ", ".join(selected)
    )
    outcomes = run_suite(
        selected, quick=quick, data_dir=data_dir, bank_options=options, api_workers=api_workers
    )
    table = Table(title="steadypay chaos experiments (bank workload throughout)")
    for column in ("experiment", "status", "attempted", "acked", "failed", "unknown",
                   "availability in fault", "recovery s", "violations", "s", "seed"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("experiment", "status") else "right")
    for o in outcomes:
        availability = (
            "-" if o.availability_during_fault is None else f"{o.availability_during_fault:.1%}"
        )
        colour = "green" if o.ok else "red"
        table.add_row(
            o.name, f"[{colour}]{o.status}[/]", str(o.attempted), str(o.acknowledged),
            str(o.failed), str(o.unknown), availability,
            "-" if o.recovery_s is None else f"{o.recovery_s:.2f}",
            f"[{colour}]{o.violations}[/]", f"{o.duration_s:.0f}",
            "-" if o.seed is None else str(o.seed),
        )  # fmt: skip
    console.print(table)
    for o in outcomes:
        if o.details:
            console.print(f"  {o.name}: {describe_details(o.details)}")
        if o.note:
            console.print(f"  {o.name}: {o.note}")
        for message in o.violation_messages or []:
            console.print(f"  [red]{o.name}[/]: {message}")
    ok = all(o.ok for o in outcomes)
    console.print("[bold green]CHAOS OK[/]" if ok else "[bold red]CHAOS FAILED[/]")
    if report is not None:
        report.write_text(json.dumps(outcomes_json(outcomes), indent=2) + "\n")
    return ok
