"""The composition root of the backups (docs/dr.md).

- :class:`LedgerProbeImpl`: lets :mod:`steadypay.backup` (platform) snapshot, total and audit
  the ledger (a context) without importing it; one connection per call, closed after it.
- :func:`targets`, :func:`archive_settings`: the buckets and the WAL archiving of `up`.
- :func:`record_run`, :func:`record_verification`: the record in ``backup.*`` (migration 0010).
- :func:`run_agent`: the scheduled job under `steadypay up` (``steadypay backup agent``).
- :func:`backup_probe`: the API's ``backup:verifiedAge`` readiness check and its gauge.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import structlog
from pydantic import SecretStr

from steadypay.backup import (
    BackupTarget,
    LedgerSnapshot,
    PrimaryServer,
    VerifyResult,
    appstate,
    archive_parameters,
    service,
    store,
)
from steadypay.backup.appstate import AppState
from steadypay.backup.errors import BackupError, VerificationFailed
from steadypay.backup.service import BackupRun
from steadypay.config import BackupSettings, Settings
from steadypay.db.router import Consistency, DatabaseRouter
from steadypay.identity.audit import AuditEntry, record_in
from steadypay.ledger import totals as ledger_totals
from steadypay.ledger.audit import audit, report_json
from steadypay.observability.gauges import BACKUP_VERIFIED_AGE, BACKUP_VERIFIED_TIMESTAMP
from steadypay.observability.health import Check, Probe, Status

log = structlog.get_logger(__name__)

_ARCHIVE_WAIT_S = 60.0


class LedgerProbeImpl:
    """:class:`~steadypay.backup.LedgerProbe` over asyncpg and the ledger's own queries."""

    def __init__(self, archive_wait_s: float = _ARCHIVE_WAIT_S) -> None:
        self.archive_wait_s = archive_wait_s

    def snapshot(self, url: str) -> LedgerSnapshot:
        return asyncio.run(self._snapshot(url))

    def totals(self, url: str) -> dict[str, Any]:
        return asyncio.run(_with(url, ledger_totals.totals))

    def audit(self, url: str) -> tuple[bool, dict[str, Any]]:
        report = asyncio.run(_with(url, audit))
        return report.ok, report_json(report)

    async def _snapshot(self, url: str) -> LedgerSnapshot:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            lsn, counted = await ledger_totals.snapshot(conn)
            taken_at = datetime.now(UTC).isoformat()
            # ship the segment holding the LSN now rather than at archive_timeout, and wait:
            # a verify (or the DR copy) right after must find it in the bucket
            segment = await conn.fetchval("SELECT pg_walfile_name(pg_switch_wal())")
            deadline = time.monotonic() + self.archive_wait_s
            while True:
                row = await conn.fetchrow(
                    "SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver"
                )
                assert row is not None
                if row["last_archived_wal"] is not None and row["last_archived_wal"] >= segment:
                    break
                if time.monotonic() > deadline:
                    raise BackupError(
                        f"WAL segment {segment} was not archived within {self.archive_wait_s:g} s "
                        f"(last failed: {row['last_failed_wal']}); is archive_command working?"
                    )
                await asyncio.sleep(0.1)
        finally:
            await conn.close()
        return LedgerSnapshot(lsn, taken_at, counted)


R = TypeVar("R")


async def _with(
    url: str, use: Callable[[asyncpg.Connection], Awaitable[R]], connect_timeout_s: float = 10
) -> R:
    conn = await asyncpg.connect(url, timeout=connect_timeout_s)
    try:
        return await use(conn)
    finally:
        await conn.close()


def targets(settings: BackupSettings) -> tuple[BackupTarget, BackupTarget | None]:
    """The primary region's bucket and the DR copy's (None without one), reached through
    boto3's endpoint (``AWS_ENDPOINT_URL``) and credentials."""
    endpoint = store.resolved_endpoint(settings.backup_region)
    return BackupTarget.primary(settings, endpoint), BackupTarget.dr(settings, endpoint)


def archive_settings(settings: BackupSettings) -> dict[str, str]:
    """PostgreSQL parameters that archive WAL to both buckets; none when backups are off."""
    if not settings.backup_enabled:
        return {}
    primary, dr = targets(settings)
    return archive_parameters(primary, dr, settings.backup_archive_timeout_s)


# --- the record in PostgreSQL ----------------------------------------------------------------


def record_run(
    server: PrimaryServer, done: BackupRun, bucket: BackupTarget, audit: AuditEntry | None = None
) -> None:
    """Record a base backup in ``backup.runs`` of the primary it was taken from, with its audit
    entry (``steadypay backup run``) in the same transaction."""

    async def write(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO backup.runs (backup_id, bucket, began_at, ended_at, duration_s,"
                " ledger_lsn, dr_copied) VALUES ($1, $2, $3, now(), $4, $5::text::pg_lsn, $6)"
                " ON CONFLICT (backup_id) DO NOTHING",
                done.backup.backup_id,
                bucket.bucket.url,
                done.started_at,
                done.duration_s,
                done.snapshot.lsn,
                done.dr_copy.copied if done.dr_copy is not None else None,
            )
            if audit is not None:
                await record_in(conn, audit)

    asyncio.run(_with(server.url(), write))


def record_action(url: str, entry: AuditEntry) -> bool:
    """Write ``entry`` to the audit trail of the database at ``url``, if it can be reached and
    has one (a database restored from a backup older than migration 0011 has none); whether it
    was written. For commands whose effect is outside the database (prune, sync-dr)."""

    async def write(conn: asyncpg.Connection) -> None:
        await record_in(conn, entry)

    try:
        asyncio.run(_with(url, write))
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        log.warning("audit_entry_not_recorded", action=entry.action, error=str(exc))
        return False
    return True


def record_verification(server: PrimaryServer, result: VerifyResult, bucket: BackupTarget) -> None:
    """Record a verification's outcome in ``backup.verifications`` (the bucket has it too)."""

    async def write(conn: asyncpg.Connection) -> None:
        await conn.execute(
            "INSERT INTO backup.verifications (backup_id, bucket, ok, verified_at,"
            " backup_end_time, duration_s, restored_to, audit_ok, totals_match, problems)"
            " VALUES ($1, $2, $3, $4::text::timestamptz, $5, $6, $7, $8, $9, $10::jsonb)",
            result.backup_id,
            bucket.bucket.url,
            result.ok,
            result.verified_at,
            service.parse_time(result.backup_end_time),
            result.duration_s,
            result.restored_to,
            result.audit_ok,
            result.totals_match,
            json.dumps(result.problems),
        )

    asyncio.run(_with(server.url(), write))


# --- the agent ---------------------------------------------------------------------------------


def run_agent(
    settings: BackupSettings,
    primary_server: Callable[[], PrimaryServer],
    *,
    scratch_dir: Path,
    password_file: Callable[[], Path],
    app_state: Callable[[], AppState] | None = None,
    once: bool = False,
    say: Callable[[str], None] | None = None,
) -> bool:
    """Back up when due (none yet, or the newest older than ``backup_interval_s``), verify
    every backup not yet verified, copy to the DR bucket, prune past the recovery window;
    then sleep until the next backup is due (checking every minute). A SIGTERM ends it
    between steps (``up``'s Ctrl-C). Returns whether the last round passed."""
    speak = say or (lambda line: print(line, flush=True))
    primary, dr = targets(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    probe = LedgerProbeImpl()
    ok = True
    while not stop.is_set():
        ok = _round(
            settings, primary, dr, primary_server, probe, scratch_dir, password_file, speak,
            app_state,
        )  # fmt: skip
        if once:
            break
        stop.wait(60.0 if ok else 15.0)
    return ok


def _round(
    settings: BackupSettings,
    primary: BackupTarget,
    dr: BackupTarget | None,
    primary_server: Callable[[], PrimaryServer],
    probe: LedgerProbeImpl,
    scratch_dir: Path,
    password_file: Callable[[], Path],
    say: Callable[[str], None],
    app_state: Callable[[], AppState] | None,
) -> bool:
    try:
        server = primary_server()
        if (fence := fenced_by(primary, dr, settings.backup_region)) is not None:
            # another region owns writes (`steadypay dr failover` ran there): this region's
            # primary takes none, and nothing of it is written to the buckets any more
            said = make_read_only(server.url())
            say(f"FENCED: {fence.get('owner')} owns writes since {fence.get('fenced_at')} "
                f"(generation {fence.get('generation')}); this primary is {said}")  # fmt: skip
            log.critical("region_fenced", owner=fence.get("owner"), primary=said)
            return False
        backups = [b for b in service.list_backups(primary) if b.status == "DONE"]
        newest = backups[-1].ended() if backups else None
        age = None if newest is None else (datetime.now(UTC) - newest).total_seconds()
        if age is None or age >= settings.backup_interval_s:
            done = service.take_backup(primary, dr, server, probe=probe, say=say)
            record_run(server, done, primary)
            say(f"backup {done.backup.backup_id} taken in {done.duration_s:.1f} s")
            backups.append(done.backup)
            if app_state is not None:
                kept = appstate.backup_app_state(app_state(), primary, dr)
                say(f"application state {kept.backup_id} stored ({kept.secrets} secrets)")
            # the recovery window moves on once per base backup, not once per round
            for bucket in (primary, *([dr] if dr is not None else [])):
                service.apply_retention(bucket, settings.backup_retention_days)
        for backup in backups:
            if service.verification_summary(primary, backup.backup_id)["verified"] is not None:
                continue
            try:
                result = service.verify(
                    primary,
                    probe,
                    scratch_dir,
                    password_file=password_file(),
                    backup_id=backup.backup_id,
                    say=say,
                )
            except VerificationFailed as exc:
                record_verification(server, exc.result, primary)
                say(f"backup {backup.backup_id} FAILED verification: {exc}")
                log.error("backup_verification_failed", backup_id=backup.backup_id)
                return False
            record_verification(server, result, primary)
            say(f"backup {backup.backup_id} verified in {result.duration_s:.1f} s")
        if dr is not None:
            copied = store.sync_to_dr(primary, dr)
            if copied.copied:
                say(f"copied {copied.copied} object(s) to {dr.bucket.url}")
    except BackupError as exc:
        say(f"backup round failed: {exc}")
        log.error("backup_round_failed", error=str(exc)[:500])
        return False
    return True


def fenced_by(
    primary: BackupTarget, dr: BackupTarget | None, own_region: str | None
) -> dict[str, Any] | None:
    """The fence record (``fence.json``, written by the runbook's first step) that names
    another region as the owner of writes, in either bucket; None if there is none."""
    for bucket in (primary, *([dr] if dr is not None else [])):
        try:
            fence = store.get_json(bucket, "fence.json")
        except BackupError:
            continue  # a bucket that does not answer fences nothing
        if fence is not None and fence.get("owner") != own_region:
            return fence
    return None


# --- readiness ---------------------------------------------------------------------------------


def backup_probe(db: DatabaseRouter, max_age_s: float) -> Probe:
    """``backup:verifiedAge`` (s): how old the newest backup proven by a restore is. ``warn``
    past ``max_age_s`` or while none has passed: payments go on, but a disaster now would
    lose more than the policy allows. Keeps ``steadypay_backup_last_verified_*`` current."""
    key = "backup:verifiedAge"

    async def run() -> list[Check]:
        async with db.reader(Consistency.BOUNDED).connection() as conn:
            newest = await conn.fetchval(
                "SELECT max(backup_end_time) FROM backup.verifications WHERE ok"
            )
        if newest is None:
            BACKUP_VERIFIED_AGE.set(math.nan)
            return [Check(key, "component", Status.WARN, None, "s", "no backup verified yet")]
        age = max(0.0, (datetime.now(UTC) - newest).total_seconds())
        BACKUP_VERIFIED_AGE.set(age)
        BACKUP_VERIFIED_TIMESTAMP.set(newest.timestamp())
        if age > max_age_s:
            output = f"the newest verified backup is {age:.0f} s old (warn above {max_age_s:g} s)"
            return [Check(key, "component", Status.WARN, round(age, 1), "s", output)]
        return [Check(key, "component", Status.PASS, round(age, 1), "s")]

    return Probe(key, "component", False, run)


# --- application state ---------------------------------------------------------------------

SECRET_FILES = ("admin.key", "pg-password", "cluster/secrets.json")
_MAX_FILE_BYTES = 1 << 20


def collect_app_state(settings: Settings, data_dir: Path, include: Sequence[Path]) -> AppState:
    """The settings (secret ones apart), the data directory's secret files, and every file
    under ``include`` (deployment manifests): what a DR region needs besides the database."""
    config: dict[str, Any] = {}
    secret_values: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            secret_values[f"setting:{name}"] = value.get_secret_value()
        elif isinstance(value, tuple) and value and all(isinstance(v, SecretStr) for v in value):
            secret_values[f"setting:{name}"] = ",".join(v.get_secret_value() for v in value)
        else:
            config[name] = value
    for relative in SECRET_FILES:
        path = data_dir / relative
        if path.is_file():
            secret_values[f"file:{relative}"] = path.read_text(encoding="utf-8")
    files: dict[str, bytes] = {}
    for root in include:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if path.stat().st_size <= _MAX_FILE_BYTES:
                files[f"{root.name}/{path.relative_to(root)}"] = path.read_bytes()
    return AppState(_json_safe(config), secret_values, files)


def _json_safe(config: dict[str, Any]) -> dict[str, Any]:
    safe: dict[str, Any] = json.loads(json.dumps(config, default=str))
    return safe


def write_app_state(state: AppState, target_dir: Path) -> list[Path]:
    """Lay a restored application state out in ``target_dir``: the secret files where a
    steadypay data directory keeps them (0600), the secret settings in ``secrets.env``
    (0600, ``STEADYPAY_*=value`` lines), ``config.json`` and ``files/``. The paths written."""
    written: list[Path] = []
    env_lines: list[str] = []
    for name, value in sorted(state.secrets.items()):
        kind, _, key = name.partition(":")
        if kind == "file":
            appstate.write_secret_file(target_dir / key, value)
            written.append(target_dir / key)
        elif kind == "setting":
            env_lines.append(f"STEADYPAY_{key.upper()}={value}")
    if env_lines:
        appstate.write_secret_file(target_dir / "secrets.env", "\n".join(env_lines))
        written.append(target_dir / "secrets.env")
    (target_dir / "config.json").write_text(json.dumps(state.config, indent=2, sort_keys=True))
    written.append(target_dir / "config.json")
    for relative, content in state.files.items():
        path = target_dir / "files" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    return written


# --- what the DR runbook asks of a database --------------------------------------------------


def newest_transfer_at(url: str) -> datetime | None:
    """When the newest transfer of the ledger at ``url`` was created (a restore's reach)."""

    async def read(conn: asyncpg.Connection) -> datetime | None:
        newest: datetime | None = await conn.fetchval("SELECT max(created_at) FROM transfers")
        return newest

    return asyncio.run(_with(url, read))


def make_read_only(url: str, timeout_s: float = 10.0) -> str:
    """Fence a primary: every new transaction read-only (``ALTER SYSTEM``, reloaded) and every
    client session ended, so its API refuses writes (503). What was done, in words."""

    async def demote(conn: asyncpg.Connection) -> str:
        await conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        await conn.execute("SELECT pg_reload_conf()")
        ended = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return f"read-only; {ended} session(s) ended"

    return asyncio.run(asyncio.wait_for(_with(url, demote, connect_timeout_s=3), timeout_s))
