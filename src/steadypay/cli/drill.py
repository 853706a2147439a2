"""`steadypay drill failover`: kill the primary N times under the bank workload and print RTO,
RPO, duplicates, 503 seconds, rejoin times and the ledger audit (:mod:`steadypay.chaos.drill`).
`steadypay drill dr`: lose a whole region and fail over to the other
(:mod:`steadypay.chaos.dr_drill`).

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

    from steadypay.chaos.dr_drill import DrDrillReport
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


@app.command("dr")
def dr(
    workload_s: Annotated[
        float, typer.Option(min=1.0, help="Seconds of bank workload before region A is lost")
    ] = 20.0,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures to this file")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where both regions live (kept) [default: a temp dir]"),
    ] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed of the bank workload")] = None,
) -> None:
    """Start region A (steadypay with backups to moto's us-east-1, copies in us-west-2), run
    the bank workload, destroy region A (every process SIGKILLed, its data directory deleted),
    run `steadypay dr failover --to us-west-2` from the us-west-2 copy alone, then count the
    acknowledged transfers missing (RPO) and duplicated, audit region B, and print RTO/RPO.
    Exit 1 if unsafe (a duplicate, a dirty audit, a failed runbook step), 3 if only a goal
    (RTO ≤ 60 s, RPO ≤ 5 s) was missed."""
    from rich.console import Console

    from steadypay.chaos.dr_drill import DrDrillOptions, run_dr_drill
    from steadypay.observability.logging import configure_logging

    configure_logging("error", None, "drill")
    progress = Console(stderr=True, log_path=False)
    options = DrDrillOptions(
        data_dir=data_dir.absolute() if data_dir else None, workload_s=workload_s, seed=seed
    )
    report = run_dr_drill(options, say=progress.log)
    print_dr_report(report, Console(width=None if sys.stdout.isatty() else 140))
    if json_file is not None:
        json_file.write_text(json.dumps(report.json(), indent=2, default=str) + "\n")
    if not report.safe:
        raise typer.Exit(EXIT_UNSAFE)
    if not report.within_goal:
        raise typer.Exit(EXIT_GOAL_MISSED)


def print_dr_report(report: DrDrillReport, console: Console) -> None:
    from rich.table import Table

    from steadypay.chaos.dr_drill import RPO_GOAL_S, RTO_GOAL_S

    table = Table(title="steadypay drill dr: region us-east-1 lost, failover to us-west-2")
    for column in ("step", "status", "s", "detail"):
        table.add_column(column)
    for step in report.runbook_steps:
        detail = ", ".join(f"{k}={v}" for k, v in step["detail"].items()
                           if not isinstance(v, list | dict))  # fmt: skip
        table.add_row(step["name"], step["status"], f"{step['duration_s']:.2f}", detail[:100])
    console.print(table)
    rto = "-" if report.rto_s is None else f"{report.rto_s:.1f}"
    console.print(
        f"RTO {rto} s (goal ≤ {RTO_GOAL_S:g} s): region A lost → first payment acknowledged "
        f"in region B; RPO {report.rpo_s:.2f} s (goal ≤ {RPO_GOAL_S:g} s): "
        f"{len(report.missing)} of {report.acknowledged} acknowledged transfer(s) missing"
    )
    audit = "[green]clean[/]" if report.audit_clean else "[red]VIOLATED[/]"
    console.print(
        f"{report.present} present exactly once; {report.duplicates} duplicate(s); ledger audit "
        f"{audit} in region B; DNS weights {report.dns_weights}; timings {report.timings}"
    )
    for missing in report.missing[:20]:
        console.print(f"  missing: {missing}")
    for problem in report.problems:
        console.print(f"  [red]problem[/]: {problem}")
    if report.safe and report.within_goal:
        console.print("[bold green]DRILL OK[/]")
    elif report.safe:
        console.print("[bold yellow]DRILL SAFE, GOAL MISSED[/]")
    else:
        console.print(f"[bold red]DRILL FAILED[/] (kept: {report.directory})")
