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


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes")] = 1,
    data_dir: DataDir = None,
) -> None:
    """Migrate, then serve the API (on the embedded PostgreSQL unless STEADYPAY_DATABASE_URL)."""
    from steadypay.cli.up import run_up

    settings = _settings()
    run_up(settings, host=host, port=port, workers=workers, data_dir=data_dir or settings.data_dir)


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
