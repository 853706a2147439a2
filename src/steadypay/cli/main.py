"""steadypay command-line entry point (Typer)."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Annotated

import typer

from steadypay.cli import admin_keys as admin_keys_cli
from steadypay.cli import backup as backup_cli
from steadypay.cli import cluster as cluster_cli
from steadypay.cli import dr as dr_cli
from steadypay.cli import drill as drill_cli
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
chaos_app = typer.Typer(help="Fault injection and money-safety checks.", no_args_is_help=True)
app.add_typer(chaos_app, name="chaos")
app.add_typer(cluster_cli.app, name="cluster")
app.add_typer(drill_cli.app, name="drill")
app.add_typer(backup_cli.app, name="backup")
app.add_typer(dr_cli.app, name="dr")
app.add_typer(admin_keys_cli.app, name="admin-keys")

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
        str,
        typer.Option(
            help="Which to run, comma-separated: fraud,notifications,api,relay,monitor,backups "
            "(backups: only with STEADYPAY_BACKUP_ENABLED=true)"
        ),
    ] = "fraud,notifications,api,relay,monitor,backups",
    db_nodes: Annotated[
        int,
        typer.Option(
            "--db-nodes",
            min=1,
            help="PostgreSQL members: 1, one embedded node; 3 to 5, a synchronous cluster "
            "under Patroni in <data-dir>/cluster (`steadypay cluster status`)",
        ),
    ] = 1,
) -> None:
    """Migrate, then run the whole system under one supervisor (on the embedded PostgreSQL
    unless STEADYPAY_DATABASE_URL is set). Ctrl-C stops everything."""
    from steadypay.cli.up import SERVICES, run_up

    chosen = tuple(s.strip() for s in services.split(",") if s.strip())
    unknown = set(chosen) - set(SERVICES)
    if unknown:
        raise typer.BadParameter(f"unknown services {sorted(unknown)}; choose from {SERVICES}")
    settings = _settings()
    external = settings.database_url is not None
    if problem := cluster_cli.db_nodes_problem(db_nodes, external_database=external):
        raise typer.BadParameter(problem, param_hint="--db-nodes")
    run_up(
        settings,
        host=host,
        port=port,
        workers=workers,
        data_dir=data_dir or settings.data_dir,
        fraud_port=fraud_port,
        notification_port=notification_port,
        services=chosen,
        db_nodes=db_nodes,
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
    from steadypay.bootstrap.notifications import notification_options
    from steadypay.cli.notifications import run_notification_service

    settings = _settings()
    run_notification_service(settings, host, port, notification_options(settings))


@app.command("outbox-relay")
def outbox_relay() -> None:
    """Deliver outbox events to the notification service (several relays may run)."""
    from steadypay.cli.outbox import run_outbox_relay

    run_outbox_relay(_settings())


# --- health monitor (steadypay.monitor) ------------------------------------------------------
@app.command()
def monitor(
    api_url: Annotated[
        str | None, typer.Option(help="The API to check [default: STEADYPAY_MONITOR_API_URL]")
    ] = None,
    interval: Annotated[
        float | None, typer.Option(min=0.01, help="Seconds between rounds [default: 30]")
    ] = None,
    threshold: Annotated[
        int | None, typer.Option(min=1, help="Failed rounds in a row that fail over [3]")
    ] = None,
    recovery: Annotated[
        int | None, typer.Option(min=1, help="Healthy rounds in a row that reset the count [2]")
    ] = None,
    cooldown: Annotated[
        float | None, typer.Option(min=0, help="Seconds before another failover unless acked")
    ] = None,
    check_timeout: Annotated[
        float | None, typer.Option(min=0.01, help="Each check's time limit [10]")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve /metrics on this port [default: off]")
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Interface for --metrics-port")] = "127.0.0.1",
    data_dir: DataDir = None,
) -> None:
    """The health monitor: checks API, database, a canary payment and dependencies every
    interval; fails over after N failed rounds (only the leader acts). Ctrl-C stops it."""
    import dataclasses

    from steadypay.cli.monitor import options_from, run_monitor

    settings = _settings()
    d = options_from(settings)
    options = dataclasses.replace(
        d,
        api_url=api_url or d.api_url,
        interval_s=d.interval_s if interval is None else interval,
        failure_threshold=threshold or d.failure_threshold,
        recovery_threshold=recovery or d.recovery_threshold,
        cooldown_s=d.cooldown_s if cooldown is None else cooldown,
        check_timeout_s=d.check_timeout_s if check_timeout is None else check_timeout,
        metrics_port=d.metrics_port if metrics_port is None else metrics_port,
        metrics_host=metrics_host,
    )
    run_monitor(settings, options, data_dir=data_dir)


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


@chaos_app.command("bank")
def chaos_bank(
    url: Annotated[str, typer.Option(help="A running steadypay")] = "http://127.0.0.1:8000",
    data_dir: DataDir = None,
    wallets: Annotated[int, typer.Option(min=2, help="Wallets, one user each")] = 8,
    clients: Annotated[int, typer.Option(min=1, help="Concurrent clients")] = 8,
    duration: Annotated[float, typer.Option(min=0.1, help="Seconds of traffic")] = 10.0,
    give_up: Annotated[
        float, typer.Option(min=0.1, help="A client gives up on an operation after this long")
    ] = 10.0,
    seed: Annotated[int | None, typer.Option(help="Replay a run's random choices")] = None,
    history: Annotated[Path | None, typer.Option(help="Write the history (JSON lines)")] = None,
    report: Annotated[Path | None, typer.Option("--json", help="Write the verdict (JSON)")] = None,
    check_notifications: Annotated[
        bool, typer.Option(help="Also check every completed transfer reached notifications")
    ] = False,
    notify_within: Annotated[float, typer.Option(help="Seconds allowed for that")] = 30.0,
) -> None:
    """Random transfers with retries, duplicates and key reuse, then prove no money was lost,
    invented or moved twice. Exit status 1 on any violation."""
    from steadypay.chaos.bank import BankOptions
    from steadypay.cli.chaos import run_bank
    from steadypay.cli.database import database, read_admin_key

    settings = _settings()
    directory = (data_dir or settings.data_dir).absolute()
    key = read_admin_key(settings, directory)
    if not key:
        raise typer.BadParameter("no admin key: set STEADYPAY_ADMIN_KEY or pass --data-dir")
    options = BankOptions(
        wallets=wallets, clients=clients, duration_s=duration, give_up_s=give_up, seed=seed
    )
    with database(settings, directory) as target:
        ok = run_bank(
            url,
            key,
            target.url,
            options,
            history=history,
            report=report,
            notifications=check_notifications,
            notify_within_s=notify_within,
        )
    if not ok:
        raise typer.Exit(1)


ChaosQuick = Annotated[
    bool, typer.Option(help="Shorter warm-up, fault and recovery: the whole suite in minutes")
]
ChaosDataDir = Annotated[
    Path | None, typer.Option(help="Where the environment lives [default: a temp dir]")
]
ChaosReport = Annotated[Path | None, typer.Option("--json", help="Write the results (JSON)")]
ChaosWorkers = Annotated[int, typer.Option(min=1, help="API worker processes")]
ChaosSeed = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="Seed of the bank workload: experiment i of the run gets seed+i (printed with "
        "the results; `chaos run NAME --seed S` replays one). Default: drawn at random",
    ),
]


@chaos_app.command("run")
def chaos_run(
    names: Annotated[list[str], typer.Argument(help="Experiment names (see `chaos list`)")],
    quick: ChaosQuick = False,
    data_dir: ChaosDataDir = None,
    report: ChaosReport = None,
    workers: ChaosWorkers = 2,
    seed: ChaosSeed = None,
) -> None:
    """Start a steadypay of its own and run these Chaos Toolkit experiments against it, the
    bank workload running throughout. Exit status 1 if any deviates or finds a violation."""
    from steadypay.chaos.suite import names as all_names

    unknown = [n for n in names if n not in all_names()]
    if unknown:
        raise typer.BadParameter(f"no experiment {unknown}; there are: {', '.join(all_names())}")
    _run_chaos(names, quick=quick, data_dir=data_dir, report=report, workers=workers, seed=seed)


@chaos_app.command("suite")
def chaos_suite(
    quick: ChaosQuick = False,
    data_dir: ChaosDataDir = None,
    report: ChaosReport = None,
    workers: ChaosWorkers = 2,
    seed: ChaosSeed = None,
) -> None:
    """Every experiment, one after the other, against one steadypay started for them."""
    from steadypay.chaos.suite import names as all_names

    _run_chaos(
        all_names(), quick=quick, data_dir=data_dir, report=report, workers=workers, seed=seed
    )


@chaos_app.command("list")
def chaos_list() -> None:
    """The experiments and what each one does."""
    from steadypay.chaos.suite import load, names

    for name in names():
        experiment = load(name)
        typer.echo(f"{name:<22} {experiment['title']}")


def _run_chaos(
    names: list[str],
    *,
    quick: bool,
    data_dir: Path | None,
    report: Path | None,
    workers: int,
    seed: int | None,
) -> None:
    from steadypay.bootstrap import configure_logging
    from steadypay.chaos.bank import BankOptions
    from steadypay.cli.chaos import run_experiments

    settings = _settings()
    configure_logging(settings.model_copy(update={"log_level": "warning"}), "chaos")
    options = BankOptions(
        wallets=6,
        clients=4,
        give_up_s=10.0,
        request_timeout_s=2.0,
        seed=seed if seed is not None else secrets.randbelow(2**31),
    )
    ok = run_experiments(
        names,
        quick=quick,
        data_dir=data_dir.absolute() if data_dir else None,
        report=report,
        options=options,
        api_workers=workers,
    )
    if not ok:
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


# --- bench payments (issue 7): the write path against pgbench TPC-B ---------------------------
@bench_app.command("payments")
def bench_payments(
    quick: Annotated[
        bool, typer.Option(help="A smoke run: 3 s phases, 1,000 wallets, pgbench scale 1")
    ] = False,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures to this file")
    ] = None,
    clients: Annotated[int, typer.Option(min=1, help="Concurrent clients (and pgbench -c)")] = 16,
    workers: Annotated[int, typer.Option(min=1, help="API worker processes")] = 2,
    duration: Annotated[
        float | None, typer.Option(min=1, help="Seconds per phase [default: 15, quick: 3]")
    ] = None,
    wallets: Annotated[
        int | None, typer.Option(min=2, help="Funded wallets [default: 10000, quick: 1000]")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, max=8189, help="Transfers per batch request [default: 1000]"),
    ] = None,
    loadgen_processes: Annotated[int, typer.Option(min=1, help="Load generator processes")] = 2,
    data_dir: Annotated[
        Path | None, typer.Option(help="Keep the bench's cluster and logs here [default: temp]")
    ] = None,
) -> None:
    """pgbench TPC-B, then single, hot-account, batch, half-peak and fraud-down transfer runs
    through the HTTP API on the same PostgreSQL; exit 1 if a ledger audit is not clean."""
    import json
    from dataclasses import replace

    from steadypay.bench.payments import BenchOptions, run
    from steadypay.cli.bench_report import print_payments

    options = replace(
        BenchOptions.quick_run() if quick else BenchOptions(),
        clients=clients,
        workers=workers,
        loadgen_processes=loadgen_processes,
        data_dir=data_dir.absolute() if data_dir else None,
    )
    if duration is not None:
        options = replace(options, duration_s=duration)
    if wallets is not None:
        options = replace(options, wallets=wallets)
    if batch_size is not None:
        options = replace(options, batch_size=batch_size)
    figures = run(options, say=lambda line: typer.echo(line, err=True))
    print_payments(figures)
    if json_file is not None:
        json_file.write_text(json.dumps(figures, indent=2) + "\n")
    if not figures["audits_clean"]:
        raise typer.Exit(1)
