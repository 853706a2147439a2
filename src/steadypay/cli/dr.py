"""`steadypay dr failover --to REGION`: the regional failover runbook (:mod:`steadypay.dr`).

Imports only Typer at import time: ``steadypay --help`` does not load boto3."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from steadypay.config import Settings
    from steadypay.dr import FailoverPlan, FailoverReport

app = typer.Typer(help="Regional disaster recovery (docs/dr.md).", no_args_is_help=True)


def build_plan(
    settings: Settings,
    to_region: str,
    data_dir: Path,
    *,
    host: str,
    port: int,
    fraud_port: int,
    notification_port: int,
    failed_at: datetime | None,
    dns_value: str | None,
) -> FailoverPlan:
    """The plan from the settings of the region failed over to (its DR bucket is the source)."""
    from steadypay.bootstrap.backup import targets
    from steadypay.dr import Dns, FailoverPlan

    if settings.backup_bucket_url is None or settings.backup_dr_bucket_url is None:
        raise typer.BadParameter(
            "the runbook restores from the DR copy: set STEADYPAY_BACKUP_BUCKET_URL and "
            "STEADYPAY_BACKUP_DR_BUCKET_URL (and their regions and keys) as the failed region had"
        )
    if settings.backup_dr_region != to_region:
        raise typer.BadParameter(
            f"--to {to_region}: the DR copy is in {settings.backup_dr_region} "
            "(STEADYPAY_BACKUP_DR_REGION); fail over to the region that holds it",
            param_hint="--to",
        )
    failed, dr = targets(settings)
    assert dr is not None
    dns = None
    if settings.dr_hosted_zone_id is not None and settings.dr_record_name is not None:
        dns = Dns(settings.dr_hosted_zone_id, settings.dr_record_name, dns_value or host)
    peer = settings.dr_peer_database_url
    return FailoverPlan(
        to_region=to_region,
        data_dir=data_dir.absolute(),
        source=dr,
        failed_bucket=failed,
        host=host,
        port=port,
        fraud_port=fraud_port,
        notification_port=notification_port,
        failed_at=failed_at.replace(tzinfo=UTC)
        if failed_at and not failed_at.tzinfo
        else failed_at,
        dns=dns,
        sns_topic_arn=settings.dr_sns_topic_arn,
        peer_database_url=peer.get_secret_value() if peer is not None else None,
    )


@app.command("failover")
def failover(
    to: Annotated[str, typer.Option("--to", help="The region to fail over to (the DR copy's)")],
    data_dir: Annotated[
        Path, typer.Option(help="The new region's steadypay data directory (created)")
    ],
    host: Annotated[str, typer.Option(help="Interface the new region's API listens on")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="The new region's API port")] = 8000,
    fraud_port: Annotated[int, typer.Option(help="Its fraud service's port")] = 8001,
    notification_port: Annotated[int, typer.Option(help="Its notification service's port")] = 8002,
    failed_at: Annotated[
        datetime | None,
        typer.Option(help="When the failed region failed (RTO/RPO) [default: the runbook's start]"),
    ] = None,
    dns_value: Annotated[
        str | None, typer.Option(help="Address DNS points at [default: --host]")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the steps; do nothing")] = False,
    yes: Annotated[bool, typer.Option(help="Do not ask for confirmation")] = False,
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write the report")] = None,
) -> None:
    """Fence the failed region, restore the DR copy into a fresh cluster, start steadypay,
    verify it (health, audit, canary payment), switch DNS, notify, report RTO and RPO. Each
    step is recorded; a rerun resumes at the first step not done. Exit 1 if a step failed."""
    from rich.console import Console

    from steadypay.cli.main import _settings
    from steadypay.dr import Runbook

    settings = _settings()
    plan = build_plan(
        settings, to, data_dir, host=host, port=port, fraud_port=fraud_port,
        notification_port=notification_port, failed_at=failed_at, dns_value=dns_value,
    )  # fmt: skip
    out = Console(width=None if sys.stdout.isatty() else 140)
    err = Console(stderr=True, log_path=False)
    out.print(f"[bold]Regional failover to {to}[/]")
    for number, line in enumerate(plan.describe(), 1):
        out.print(f"  {number}. {line}", highlight=False)
    if dry_run:
        return
    if not yes and not typer.confirm("Run these steps?", default=False):
        raise typer.Exit(1)
    report = Runbook(plan, say=err.log).run()
    print_report(report, out)
    if json_file is not None:
        json_file.write_text(json.dumps(report.json(), indent=2, default=str) + "\n")
    if not report.ok:
        raise typer.Exit(1)


def print_report(report: FailoverReport, out: Console) -> None:
    from rich import box
    from rich.table import Table

    table = Table(title="steadypay dr failover: timeline", box=box.SIMPLE_HEAVY)
    for column in ("step", "status", "started", "s", "detail"):
        table.add_column(column)
    for step in report.steps:
        detail = ", ".join(f"{k}={v}" for k, v in step.detail.items() if not isinstance(v, list))
        table.add_row(step.name, step.status, step.started_at[11:23], f"{step.duration_s:.2f}",
                      detail[:120])  # fmt: skip
    out.print(table)
    rto = "—" if report.rto_s is None else f"{report.rto_s:.1f} s"
    rpo = "—" if report.rpo_s is None else f"{report.rpo_s:.1f} s"
    out.print(f"RTO {rto} (failure → first acknowledged payment in the new region); "
              f"RPO ≤ {rpo} (newest restored transfer → failure)")  # fmt: skip
    out.print("[bold green]FAILOVER OK[/]" if report.ok else "[bold red]FAILOVER FAILED[/]")
