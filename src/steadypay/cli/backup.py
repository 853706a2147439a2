"""`steadypay backup run | list | verify | restore | sync-dr | prune | agent` (docs/dr.md).

Each takes ``--data-dir`` like the other commands and reads the same settings
(``STEADYPAY_BACKUP_*``; the S3 endpoint is boto3's ``AWS_ENDPOINT_URL``). ``--from-dr``
reads the DR region's copy instead of the primary bucket. Commands that change something
take ``--dry-run``; ``restore`` refuses to touch a running or non-empty data directory
without ``--yes``. Long commands show progress on stderr and a summary table on stdout, write
``--json F`` for machines, and exit 1 when what they check fails.

Imports only Typer at import time: ``steadypay --help`` does not load barman's helpers.
"""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from steadypay.backup import BackupTarget, PrimaryServer
    from steadypay.config import Settings

app = typer.Typer(
    help="Encrypted continuous backups (barman-cloud to S3) and their proof by restore.",
    no_args_is_help=True,
)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="The steadypay data directory [default: ./.steadypay]"),
]
FromDr = Annotated[
    bool, typer.Option("--from-dr", help="Read the DR region's copy, not the primary bucket")
]
JsonFile = Annotated[Path | None, typer.Option("--json", help="Also write the result here")]
EXIT_FAILED = 1


def _settings() -> Settings:
    from steadypay.cli.main import _settings as settings

    return settings()


def _data_dir(data_dir: Path | None, settings: Settings) -> Path:
    return (data_dir or settings.data_dir).absolute()


def _consoles() -> tuple[Console, Console]:
    from rich.console import Console

    return Console(stderr=True, log_path=False), Console(width=None if sys.stdout.isatty() else 140)


def _targets(settings: Settings, from_dr: bool = False) -> tuple[BackupTarget, BackupTarget | None]:
    """(source, DR copy). ``from_dr``: the DR copy is the source (and there is no other)."""
    from steadypay.bootstrap.backup import targets

    if settings.backup_bucket_url is None:
        raise typer.BadParameter(
            "no backup bucket: set STEADYPAY_BACKUP_BUCKET_URL=s3://bucket/prefix (docs/dr.md)"
        )
    primary, dr = targets(settings)
    if from_dr:
        if dr is None:
            raise typer.BadParameter("--from-dr needs STEADYPAY_BACKUP_DR_BUCKET_URL")
        return dr, None
    return primary, dr


def _write_json(path: Path | None, document: Any) -> None:
    if path is not None:
        path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def _fail(err: Console, message: str, json_file: Path | None, document: Any) -> typer.Exit:
    err.print(f"[bold red]FAILED[/] {message}", markup=True, highlight=False, soft_wrap=True)
    _write_json(json_file, document)
    return typer.Exit(EXIT_FAILED)


def running_primary(settings: Settings, data_dir: Path) -> PrimaryServer:
    """The primary of ``data_dir``: the Patroni cluster's current leader, or the embedded node.

    barman-cloud-backup reads the data directory's files itself, so it backs up only a
    database on this machine: for a managed one (RDS, say) the provider's own snapshots and
    point-in-time recovery are the backups (docs/dr.md)."""
    from steadypay.backup import BackupError, PrimaryServer
    from steadypay.cli.database import cluster_for, embedded_for, has_cluster

    if has_cluster(data_dir):
        from steadypay.ha import ClusterError

        cluster = cluster_for(settings, data_dir)
        try:
            leader = cluster.primary()
        except ClusterError as exc:
            raise BackupError(f"no primary to back up right now: {exc}") from exc
        finally:
            cluster.close()
        return PrimaryServer(
            cluster.layout.host,
            leader.pg_port,
            cluster.superuser_password(),
            f"the cluster's primary {leader.name} (port {leader.pg_port})",
        )
    node = embedded_for(settings, data_dir)
    if not node.is_running():
        raise BackupError(
            f"no PostgreSQL runs in {data_dir}: start `steadypay up` with "
            "STEADYPAY_BACKUP_ENABLED=true (WAL must be archived for a backup to restore); "
            "a managed database (STEADYPAY_DATABASE_URL) is backed up by its provider"
        )
    password = node.password_file.read_text(encoding="utf-8").strip()
    return PrimaryServer(node.host, node.port, password, f"the embedded node (:{node.port})")


def password_file_for(settings: Settings, data_dir: Path, given: Path | None) -> Path:
    """The superuser password a restore of ``data_dir``'s backups needs (the source's)."""
    from steadypay.cli.database import cluster_for, has_cluster

    if given is not None:
        return given.absolute()
    if has_cluster(data_dir):
        cluster = cluster_for(settings, data_dir)
        try:
            password = cluster.superuser_password()
        finally:
            cluster.close()
        path = data_dir / "backup-restore-password"
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(password + "\n", encoding="utf-8")
        return path
    return data_dir / "pg-password"


@app.command("run")
def run(
    data_dir: DataDir = None,
    dry_run: Annotated[bool, typer.Option(help="Say what would be backed up; do nothing")] = False,
    json_file: JsonFile = None,
) -> None:
    """Take a base backup of the running primary now, record the ledger's totals beside it,
    then copy it to the DR bucket."""
    from steadypay.backup import BackupError, service
    from steadypay.bootstrap.backup import LedgerProbeImpl, record_run
    from steadypay.identity.audit import BACKUP_RUN, cli_entry

    settings, (err, out) = _settings(), _consoles()
    primary, dr = _targets(settings)
    directory = _data_dir(data_dir, settings)
    try:
        source = running_primary(settings, directory)
        if dry_run:
            copy = f", then copy to {dr.bucket.url}" if dr else ""
            out.print(f"would back up {source.describe} to {primary.bucket.url}{copy}")
            return
        with err.status("base backup…"):
            done = service.take_backup(primary, dr, source, probe=LedgerProbeImpl(), say=err.log)
            entry = cli_entry(BACKUP_RUN, done.backup.backup_id, bucket=primary.bucket.url)
            record_run(source, done, primary, entry)
    except BackupError as exc:
        raise _fail(err, str(exc), json_file, {"ok": False, "error": str(exc)}) from None
    document = done.as_json()
    _table(out, "backup", [document | {"bucket": primary.bucket.url}])
    _write_json(json_file, document | {"ok": True})


@app.command("list")
def list_(data_dir: DataDir = None, from_dr: FromDr = False, json_file: JsonFile = None) -> None:
    """The backups in the bucket, oldest first, with their last verification."""
    from steadypay.backup import BackupError, service

    settings, (err, out) = _settings(), _consoles()
    source, _ = _targets(settings, from_dr)
    _ = data_dir
    try:
        rows = [b.as_json() | service.verification_summary(source, b.backup_id)
                for b in service.list_backups(source)]  # fmt: skip
    except BackupError as exc:
        raise _fail(err, str(exc), json_file, {"ok": False, "error": str(exc)}) from None
    _table(out, f"backups in {source.bucket.url}", rows)
    _write_json(json_file, {"bucket": source.bucket.url, "backups": rows})


@app.command("verify")
def verify(
    backup_id: Annotated[str | None, typer.Argument(help="Backup id [default: the newest]")] = None,
    data_dir: DataDir = None,
    from_dr: FromDr = False,
    to_time: Annotated[
        datetime | None,
        typer.Option(help="Recover to this time instead of the backup's recorded end"),
    ] = None,
    password_file: Annotated[
        Path | None, typer.Option(help="The source's superuser password [default: the data dir's]")
    ] = None,
    json_file: JsonFile = None,
) -> None:
    """Prove a backup: check its objects, restore it into a scratch directory on a free port,
    recover, run the ledger audit and compare the totals recorded at backup time. The outcome
    is recorded in the bucket. Exit 1 (with what failed) unless it passed."""
    from steadypay.backup import BackupError, service
    from steadypay.backup.errors import VerificationFailed
    from steadypay.bootstrap.backup import LedgerProbeImpl

    settings, (err, out) = _settings(), _consoles()
    source, _ = _targets(settings, from_dr)
    directory = _data_dir(data_dir, settings)
    try:
        with err.status("verifying…"):
            result = service.verify(
                source,
                LedgerProbeImpl(),
                directory / "backup-scratch",
                password_file=password_file_for(settings, directory, password_file),
                backup_id=backup_id,
                to_time=_aware(to_time),
                bin_dir=settings.pg_bin_dir,
                say=err.log,
            )
    except VerificationFailed as exc:
        _record(settings, directory, exc.result, source)
        raise _fail(err, str(exc), json_file, exc.result.as_json()) from None
    except BackupError as exc:
        raise _fail(err, str(exc), json_file, {"ok": False, "error": str(exc)}) from None
    _record(settings, directory, result, source)
    _table(out, "verified", [result.as_json()])
    _write_json(json_file, result.as_json())


@app.command("restore")
def restore(
    target_dir: Annotated[Path, typer.Option(help="The new steadypay data directory")],
    to_time: Annotated[
        datetime | None, typer.Option(help="Recover to this time (point-in-time recovery)")
    ] = None,
    to_latest: Annotated[bool, typer.Option(help="Recover to the end of the archived WAL")] = False,
    backup_id: Annotated[
        str | None, typer.Option(help="Restore this backup [default: the newest that fits]")
    ] = None,
    data_dir: DataDir = None,
    from_dr: FromDr = False,
    password_file: Annotated[
        Path | None, typer.Option(help="The source's superuser password [default: the data dir's]")
    ] = None,
    yes: Annotated[bool, typer.Option(help="Overwrite a running or non-empty target")] = False,
    dry_run: Annotated[bool, typer.Option(help="Say what would be restored; do nothing")] = False,
    json_file: JsonFile = None,
) -> None:
    """Restore a base backup and the archived WAL into TARGET_DIR, to a time or to the end,
    and leave it stopped: `steadypay up --data-dir TARGET_DIR` then serves it."""
    from steadypay.backup import BackupError, service
    from steadypay.identity.audit import BACKUP_RESTORE

    if (to_time is None) == (not to_latest):
        raise typer.BadParameter("give exactly one of --to-time T or --to-latest")
    settings, (err, out) = _settings(), _consoles()
    source, _ = _targets(settings, from_dr)
    directory, target = _data_dir(data_dir, settings), target_dir.absolute()
    try:
        chosen = service.choose_backup(source, backup_id, _aware(to_time))
        problem = service.target_problem(target)
        plan = (
            f"restore backup {chosen.backup_id} (ended {chosen.end_time}) from "
            f"{source.bucket.url} into {target}, recovering to "
            + (_aware(to_time).isoformat() if to_time else "the end of the archived WAL")  # type: ignore[union-attr]
        )
        if dry_run:
            out.print(f"would {plan}" + (f"; first erase it: {problem}" if problem else ""))
            return
        if problem is not None and not yes:
            raise BackupError(f"refusing to restore into {target}: {problem} (--yes overwrites)")
        err.log(plan)
        with err.status("restoring…"):
            restored = service.restore(
                source,
                target,
                password_file=password_file_for(settings, directory, password_file),
                backup_id=chosen.backup_id,
                to_time=_aware(to_time),
                bin_dir=settings.pg_bin_dir,
                overwrite=yes,
                say=err.log,
            )
            _audit_on(
                restored.node.url,
                BACKUP_RESTORE,
                chosen.backup_id,
                bucket=source.bucket.url,
                to_time=_aware(to_time).isoformat() if to_time else "latest",  # type: ignore[union-attr]
                target_dir=str(target),
            )
            restored.node.stop(mode="fast")
    except BackupError as exc:
        raise _fail(err, str(exc), json_file, {"ok": False, "error": str(exc)}) from None
    document = restored.as_json()
    _table(out, "restored", [document])
    out.print(f"start it with: steadypay up --data-dir {target}")
    _write_json(json_file, document)


@app.command("sync-dr")
def sync_dr(
    dry_run: Annotated[bool, typer.Option(help="Count what would be copied")] = False,
    json_file: JsonFile = None,
) -> None:
    """Copy to the DR bucket (re-encrypted under its region's key) every object it lacks."""
    from steadypay.backup import BackupError, store
    from steadypay.identity.audit import BACKUP_SYNC_DR

    settings, (err, out) = _settings(), _consoles()
    primary, dr = _targets(settings)
    if dr is None:
        raise typer.BadParameter("no DR bucket: set STEADYPAY_BACKUP_DR_BUCKET_URL")
    try:
        report = store.sync_to_dr(primary, dr, dry_run=dry_run)
    except BackupError as exc:
        raise _fail(err, str(exc), json_file, {"ok": False, "error": str(exc)}) from None
    if not dry_run:
        _audit_on_primary(settings, BACKUP_SYNC_DR, dr.bucket.url, **report.as_json())
    _table(
        out, ("would copy" if dry_run else "copied") + f" to {dr.bucket.url}", [report.as_json()]
    )
    _write_json(json_file, report.as_json())


@app.command("prune")
def prune(
    dry_run: Annotated[bool, typer.Option(help="List what would be deleted")] = False,
    from_dr: FromDr = False,
) -> None:
    """Delete backups (and the WAL only they need) outside the recovery window
    (STEADYPAY_BACKUP_RETENTION_DAYS)."""
    from steadypay.backup import BackupError, service
    from steadypay.identity.audit import BACKUP_PRUNE

    settings, (err, out) = _settings(), _consoles()
    source, _ = _targets(settings, from_dr)
    try:
        said = service.apply_retention(source, settings.backup_retention_days, dry_run=dry_run)
    except BackupError as exc:
        raise _fail(err, str(exc), None, None) from None
    if not dry_run:
        _audit_on_primary(settings, BACKUP_PRUNE, source.bucket.url, deleted=said.strip()[:2000])
    out.print(said.strip() or "nothing to delete")


@app.command("app-state")
def app_state(
    data_dir: DataDir = None,
    include: Annotated[
        list[Path] | None,
        typer.Option(help="A folder of deployment manifests to keep too (repeatable)"),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="List what would be stored; store nothing")] = False,
    json_file: JsonFile = None,
) -> None:
    """Back up the configuration, deployment manifests and secrets to both buckets; the
    secrets only envelope-encrypted (a KMS data key per backup, AES-256-GCM), with a manifest
    of checksums."""
    from steadypay.backup import BackupError
    from steadypay.backup.appstate import backup_app_state
    from steadypay.bootstrap.backup import collect_app_state

    settings, (err, out) = _settings(), _consoles()
    primary, dr = _targets(settings)
    folders = [p.absolute() for p in include or []]
    if missing := [str(p) for p in folders if not p.is_dir()]:
        raise typer.BadParameter(f"not a folder: {', '.join(missing)}", param_hint="--include")
    state = collect_app_state(settings, _data_dir(data_dir, settings), folders)
    if dry_run:
        out.print(f"would store {len(state.config)} settings, {len(state.files)} file(s) and "
                  f"the secrets {sorted(state.secrets)} (encrypted)")  # fmt: skip
        return
    try:
        done = backup_app_state(state, primary, dr)
    except BackupError as exc:
        raise _fail(err, str(exc), json_file, {"ok": False, "error": str(exc)}) from None
    _table(out, "application state", [done.as_json()])
    _write_json(json_file, done.as_json())


@app.command("restore-app-state")
def restore_app_state(
    target_dir: Annotated[Path, typer.Option(help="Where to write it (a new data directory)")],
    app_state_id: Annotated[
        str | None, typer.Option("--id", help="Which one [default: the newest]")
    ] = None,
    from_dr: FromDr = False,
    yes: Annotated[bool, typer.Option(help="Overwrite secret files already there")] = False,
    json_file: JsonFile = None,
) -> None:
    """Check an application-state backup against its manifest, decrypt its secrets with this
    region's KMS key and write them (0600) into TARGET_DIR: admin.key, pg-password,
    secrets.env, config.json, files/."""
    from steadypay.backup import BackupError
    from steadypay.backup import appstate as state_store
    from steadypay.bootstrap.backup import SECRET_FILES, write_app_state

    settings, (err, out) = _settings(), _consoles()
    source, _ = _targets(settings, from_dr)
    target = target_dir.absolute()
    present = [n for n in (*SECRET_FILES, "secrets.env") if (target / n).exists()]
    if present and not yes:
        raise typer.BadParameter(f"{target} already holds {present}; --yes overwrites them")
    try:
        state = state_store.restore_app_state(source, app_state_id)
    except BackupError as exc:
        raise _fail(err, str(exc), json_file, {"ok": False, "error": str(exc)}) from None
    written = write_app_state(state, target)
    document = {"ok": True, "target_dir": str(target), "written": [str(p) for p in written],
                "secrets": sorted(state.secrets)}  # fmt: skip
    out.print(f"restored {len(state.secrets)} secret(s) and {len(state.files)} file(s) to {target}")
    _write_json(json_file, document)


@app.command("agent")
def agent(
    data_dir: DataDir = None,
    once: Annotated[
        bool, typer.Option(help="One round (backup if due, verify, copy), then exit")
    ] = False,
) -> None:
    """The scheduled job `steadypay up` runs with backups on: a first base backup at start,
    another every STEADYPAY_BACKUP_INTERVAL_S, each verified by a restore and copied to the
    DR bucket; the age of the newest verified backup as a metric."""
    from steadypay.bootstrap.backup import collect_app_state, run_agent

    settings = _settings()
    if not settings.backup_enabled:
        raise typer.BadParameter("backups are off: set STEADYPAY_BACKUP_ENABLED=true")
    directory = _data_dir(data_dir, settings)
    keys = settings.backup_kms_key_id is not None and (
        settings.backup_dr_bucket_url is None or settings.backup_dr_kms_key_id is not None
    )
    ok = run_agent(
        settings,
        lambda: running_primary(settings, directory),
        scratch_dir=directory / "backup-scratch",
        password_file=lambda: password_file_for(settings, directory, None),
        # the secrets are stored only envelope-encrypted: without KMS keys, not at all
        app_state=(lambda: collect_app_state(settings, directory, [])) if keys else None,
        once=once,
    )
    if not ok:
        raise typer.Exit(EXIT_FAILED)


def _record(settings: Settings, data_dir: Path, result: Any, source: BackupTarget) -> None:
    """Record the outcome in ``backup.verifications`` when the primary of ``data_dir`` runs
    (the readiness check reads it); the bucket has it either way."""
    from steadypay.backup import BackupError
    from steadypay.bootstrap.backup import record_verification

    # no primary here (a DR region's verify): the bucket's record stands
    with contextlib.suppress(BackupError, OSError):
        record_verification(running_primary(settings, data_dir), result, source)


def _audit_on(url: str, action: str, target: str | None, **details: Any) -> None:
    from steadypay.bootstrap.backup import record_action
    from steadypay.identity.audit import cli_entry

    record_action(url, cli_entry(action, target, **details))


def _audit_on_primary(settings: Settings, action: str, target: str, **details: Any) -> None:
    """The audit entry of a command whose effect is in the buckets, on the primary of the
    default data dir when one runs here (docs/security.md: "recorded when it can be")."""
    from steadypay.backup import BackupError

    try:
        primary = running_primary(settings, _data_dir(None, settings))
    except (BackupError, OSError) as exc:
        Console(stderr=True).print(
            f"[yellow]warning[/]: {action} is not in the audit trail (no database here: {exc})"
        )
        return
    _audit_on(primary.url(), action, target, **details)


def _aware(moment: datetime | None) -> datetime | None:
    """A time without a zone is UTC (what the logs and the API print)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _table(out: Console, title: str, rows: list[dict[str, Any]]) -> None:
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAVY)
    if not rows:
        out.print(f"{title}: none")
        return
    columns = [k for k in rows[0] if not isinstance(rows[0][k], dict | list)]
    for column in columns:
        table.add_column(column.replace("_", " "))
    for row in rows:
        table.add_row(*("—" if row.get(c) is None else str(row.get(c)) for c in columns))
    out.print(table)
