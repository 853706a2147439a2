"""steadypay command-line entry point (Typer)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from steadypay.config import Settings

app = typer.Typer(
    help="steadypay: a payment ledger that never loses or invents a cent.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
ledger_app = typer.Typer(help="Inspect the ledger.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
bench_app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Embedded database and admin key [default: ./.steadypay]"),
]


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise typer.BadParameter(str(exc)) from exc


Host = Annotated[str, typer.Option(help="Interface to listen on")]


@app.command()
def up(
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The payment API's port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="API worker processes")] = 1,
    data_dir: DataDir = None,
    fraud_port: Annotated[int, typer.Option(help="The fraud service's port")] = 8001,
    notification_port: Annotated[int, typer.Option(help="The notification service's port")] = 8002,
    services: Annotated[
        str, typer.Option(help="Which to run, comma-separated: fraud,notifications,api,relay")
    ] = "fraud,notifications,api,relay",
) -> None:
    """Migrate, then run the whole system under one supervisor (on the embedded PostgreSQL
    unless STEADYPAY_DATABASE_URL is set). Ctrl-C stops everything."""
    from steadypay.cli.up import SERVICES, run_up

    chosen = tuple(s.strip() for s in services.split(",") if s.strip())
    unknown = set(chosen) - set(SERVICES)
    if unknown:
        raise typer.BadParameter(f"unknown services {sorted(unknown)}; choose from {SERVICES}")
    settings = _settings()
    run_up(
        settings,
        host=host,
        port=port,
        workers=workers,
        data_dir=data_dir or settings.data_dir,
        fraud_port=fraud_port,
        notification_port=notification_port,
        services=chosen,
    )


@app.command()
def api(
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes")] = 1,
) -> None:
    """The payment API alone (STEADYPAY_DATABASE_URL and STEADYPAY_ADMIN_KEY required)."""
    from steadypay.cli.up import run_api

    run_api(_settings(), host=host, port=port, workers=workers)


@app.command("fraud-service")
def fraud_service(
    host: Host = "127.0.0.1", port: Annotated[int, typer.Option(help="HTTP port")] = 8001
) -> None:
    """The fraud service: POST /check-fraud, a configurable rules engine."""
    from steadypay.cli.fraud import run_fraud_service

    run_fraud_service(_settings(), host, port)


@app.command("notification-service")
def notification_service(
    host: Host = "127.0.0.1", port: Annotated[int, typer.Option(help="HTTP port")] = 8002
) -> None:
    """The notification service: receives events, signs and delivers them to webhooks."""
    from steadypay.cli.notifications import run_notification_service
    from steadypay.notifications.options import NotificationOptions

    settings = _settings()
    options = NotificationOptions(
        rotation_window_s=settings.webhook_rotation_window_hours * 3600,
        max_age_s=settings.webhook_max_age_hours * 3600,
        delivery_timeout_s=settings.webhook_timeout_s,
        backoff_base_s=settings.webhook_backoff_base_s,
        backoff_cap_s=settings.webhook_backoff_cap_s,
    )
    run_notification_service(settings, host, port, options)


@app.command("outbox-relay")
def outbox_relay() -> None:
    """Deliver outbox events to the notification service (several relays may run)."""
    from steadypay.cli.outbox import run_outbox_relay

    settings = _settings()
    run_outbox_relay(
        settings,
        batch_size=settings.outbox_batch_size,
        lease_s=settings.outbox_lease_s,
        max_age_s=settings.outbox_max_age_hours * 3600,
        backoff_base_s=settings.outbox_backoff_base_s,
        backoff_cap_s=settings.outbox_backoff_cap_s,
    )


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Apply database migrations and exit."""
    from steadypay.cli.database import database
    from steadypay.db.migrate import upgrade

    settings = _settings()
    with database(settings, (data_dir or settings.data_dir).absolute()) as target:
        upgrade(target.url)
    typer.echo(f"migrated: {target.describe()}")


@app.command()
def demo(
    url: Annotated[str, typer.Option(help="A running steadypay")] = "http://127.0.0.1:8000",
    admin_key: Annotated[
        str | None, typer.Option(help="Default: STEADYPAY_ADMIN_KEY or <data-dir>/admin.key")
    ] = None,
    data_dir: DataDir = None,
    load: Annotated[
        int, typer.Option(min=0, help="Then run this many random concurrent transfers")
    ] = 0,
    wallets: Annotated[int, typer.Option(min=2, help="Wallets for --load")] = 20,
    concurrency: Annotated[int, typer.Option(min=1, help="Parallel requests for --load")] = 32,
) -> None:
    """Create users and wallets, move money, print what happened (optionally, a short load)."""
    from steadypay.cli.database import read_admin_key
    from steadypay.cli.demo import DemoError, print_load, run_demo, run_load

    settings = _settings()
    key = admin_key or read_admin_key(settings, (data_dir or settings.data_dir).absolute())
    if not key:
        raise typer.BadParameter("no admin key: pass --admin-key or set STEADYPAY_ADMIN_KEY")
    try:
        run_demo(url, key)
    except DemoError as exc:
        typer.echo(f"demo failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    if load:
        report = asyncio.run(
            run_load(url, key, transfers=load, wallets=wallets, concurrency=concurrency)
        )
        print_load(report)
        if not report.conserved or report.transport_errors:
            raise typer.Exit(1)


@ledger_app.command("check")
def ledger_check(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report")] = False,
) -> None:
    """Audit the ledger's invariants; exit status 1 on any violation."""
    from steadypay.cli.ledger import run_check

    settings = _settings()
    if not run_check(settings, (data_dir or settings.data_dir).absolute(), as_json=as_json):
        raise typer.Exit(1)


@bench_app.command("resilience")
def bench_resilience(
    calls: Annotated[int, typer.Option(min=1, help="Calls to the always-failing server")] = 1000,
    rejections: Annotated[
        int, typer.Option(min=100, help="Calls rejected by an open circuit")
    ] = 20000,
    concurrency: Annotated[int, typer.Option(min=1)] = 50,
    redis_url: Annotated[
        str | None, typer.Option(help="Also measure the Redis-shared breaker store")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Open-circuit rejection latency and retry amplification against a dead dependency."""
    from steadypay.bench.resilience import run
    from steadypay.cli.bench_report import print_resilience

    figures = asyncio.run(run(calls, rejections, concurrency, redis_url))
    if as_json:
        import json

        typer.echo(json.dumps(figures, indent=2))
    else:
        print_resilience(figures)
