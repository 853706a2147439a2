"""`steadypay drill failover`: kill the primary N times under the bank workload and print RTO,
RPO, duplicates, 503 seconds, rejoin times and the ledger audit (:mod:`steadypay.chaos.drill`).

Imports only Typer at import time: ``steadypay --help`` does not load the harness."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from steadypay.chaos.drill import DrillReport

app = typer.Typer(help="Failure drills that print figures.", no_args_is_help=True)

EXIT_UNSAFE = 1
EXIT_GOAL_MISSED = 3


class Mode(StrEnum):
    postmaster = "postmaster"
    node = "node"


@app.command("failover")
def failover(
    kills: Annotated[int, typer.Option(min=1, help="How many times to kill the primary")] = 3,
    mode: Annotated[
        Mode,
        typer.Option(
            help="postmaster: SIGKILL the primary's PostgreSQL; node: SIGKILL its Patroni "
            "and PostgreSQL (the node comes back once a standby took over)"
        ),
    ] = Mode.postmaster,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures to this file")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where the drill's steadypay lives (kept) [default: a temp dir]"),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="API worker processes")] = 2,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed of the bank workload")] = None,
) -> None:
    """Start steadypay on three PostgreSQL members under Patroni, run the bank workload, kill
    the primary N times (waiting each time for the cluster to be whole again), then check the
    ledger. Exit status 1 if a transfer was lost or duplicated, the audit or the bank checker
    failed, or a request got a 500; 3 if only an RTO was above the goal (5 s postmaster, 30 s
    node)."""
    from rich.console import Console

    from steadypay.chaos.drill import DrillOptions, run_drill
    from steadypay.observability.logging import configure_logging

    configure_logging("error", None, "drill")  # the progress lines, not the faults' warnings
    progress = Console(stderr=True, log_path=False)
    options = DrillOptions(
        kills=kills,
        mode="node" if mode is Mode.node else "postmaster",
        data_dir=data_dir.absolute() if data_dir else None,
        api_workers=workers,
        seed=seed,
    )
    report = run_drill(options, say=progress.log)
    print_report(report, Console(width=None if sys.stdout.isatty() else 140))
    if json_file is not None:
        json_file.write_text(json.dumps(report.json(), indent=2) + "\n")
    if not report.safe:
        raise typer.Exit(EXIT_UNSAFE)
    if not report.within_goal:
        raise typer.Exit(EXIT_GOAL_MISSED)


def print_report(report: DrillReport, console: Console) -> None:
    from rich.table import Table

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    mode = report.options.mode
    table = Table(title=f"steadypay drill failover --mode {mode} (bank workload throughout)")
    for column in ("kill", "primary killed", "new primary", "promoted s", "RTO s", "503 s",
                   "answers until recovery", "rejoined s", "lost"):  # fmt: skip
        table.add_column(column, justify="left" if "primary" in column else "right")
    for k in report.kills:
        answers = ", ".join(f"{n} {status}" for status, n in k.answers.items())
        rto = seconds(k.rto_s)
        if k.rto_s is None or k.rto_s > report.goal_s:
            rto = f"[red]{rto}[/]"
        table.add_row(
            str(k.number), k.member, k.new_primary or "-", seconds(k.promoted_s), rto,
            f"{k.seconds_503:.2f}", answers or "-", seconds(k.rejoined_s),
            f"[{'red' if k.lost else 'green'}]{k.lost}[/]",
        )  # fmt: skip
    console.print(table)
    body = report.json()
    p50, p99 = body["rto_s"]["p50"], body["rto_s"]["p99"]
    console.print(
        f"RTO p50 {seconds(p50)} s, p99 {seconds(p99)} s (goal ≤ {report.goal_s:g} s) over "
        f"{len(report.kills)} kill(s); {report.operations} operations, "
        f"{report.acknowledged} acknowledged in {report.duration_s:.0f} s"
    )
    audit = "[green]clean[/]" if report.audit_clean else "[red]VIOLATED[/]"
    console.print(
        f"RPO: {report.lost} acknowledged transfer(s) lost; {report.duplicates} duplicate(s); "
        f"ledger audit {audit}; {report.answers_500} answer(s) 500"
    )
    if report.verdict is not None:
        for v in report.verdict.violations[:20]:
            console.print(f"  [red]{v.check}[/]: {v.message}")
    for problem in report.problems:
        console.print(f"  [red]problem[/]: {problem}")
    if report.safe and report.within_goal:
        console.print("[bold green]DRILL OK[/]")
    elif report.safe:
        console.print("[bold yellow]DRILL SAFE, RTO GOAL MISSED[/]")
    else:
        console.print("[bold red]DRILL FAILED[/]")
    if not (report.safe and report.within_goal):
        console.print(f"logs: {report.data_dir}/logs, {report.data_dir}/cluster/pg*/log")
