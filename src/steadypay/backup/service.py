"""Backup, list, restore and verify: barman-cloud driven against one bucket at a time.

**What verify compares.** Right after a base backup, :func:`take_backup` asks the
:class:`LedgerProbe` for a :class:`LedgerSnapshot`: in one REPEATABLE READ transaction that
first takes ``SHARE`` locks on the ledger's tables (so no transfer commits while it reads), the
ledger's counts and sums, and ``pg_current_wal_insert_lsn()``. Every write visible to that
snapshot has its commit record below the LSN and every later one above it, so a recovery with
``recovery_target_lsn`` = that LSN must hold exactly those counts and sums. The snapshot is
stored as ``ledger/<backup_id>.json`` beside the backup, with the manifest (key, ETag, size) of
the backup's objects. ``verify`` checks the manifest against the bucket (a changed or missing
object fails at once), restores the backup into a scratch directory, recovers to that LSN (a
missing WAL segment leaves the target unreached: PostgreSQL stops with "recovery ended before
configured recovery target was reached", and verify fails with its log), runs the ledger audit
and compares the totals. The outcome goes to ``verifications/<backup_id>.json`` in the bucket;
:func:`last_verified_backup_time` reads the newest passing one.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from steadypay.backup import store
from steadypay.backup.commands import BackupTarget, recovery_parameters
from steadypay.backup.errors import BackupError, VerificationFailed
from steadypay.db._pgproc import EmbeddedPostgresError, clean_env, log_tail, run
from steadypay.db.embedded import SUPERUSER, EmbeddedPostgres

__all__ = [
    "BackupError",
    "BackupInfo",
    "LedgerProbe",
    "LedgerSnapshot",
    "PrimaryServer",
    "RestoredNode",
    "VerifyResult",
    "last_verified_backup_time",
    "list_backups",
    "restore",
    "take_backup",
    "verify",
]

_BACKUP_TIMEOUT = 3600.0
_LIST_TIMEOUT = 120.0
Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class LedgerSnapshot:
    """The ledger's counts and sums at ``lsn`` (see the module docstring)."""

    lsn: str
    taken_at: str
    totals: dict[str, Any]


class LedgerProbe(Protocol):
    """What the backup needs of the ledger and of the server, given a superuser URL; built by
    the composition root (:mod:`steadypay.bootstrap.backup`)."""

    def snapshot(self, url: str) -> LedgerSnapshot:
        """Counts, sums and the LSN they hold at; then switch WAL and wait until archived."""
        ...

    def totals(self, url: str) -> dict[str, Any]:
        """The same counts and sums as :meth:`snapshot`'s, on a restored server."""
        ...

    def audit(self, url: str) -> tuple[bool, dict[str, Any]]:
        """The ledger audit (``steadypay ledger check``): whether clean, and its report."""
        ...


@dataclass(frozen=True, slots=True)
class BackupInfo:
    backup_id: str
    status: str
    begin_time: str | None
    end_time: str | None
    begin_wal: str | None
    end_wal: str | None

    @classmethod
    def from_barman(cls, item: dict[str, Any]) -> BackupInfo:
        return cls(
            str(item["backup_id"]),
            str(item.get("status", "")),
            item.get("begin_time"),
            item.get("end_time"),
            item.get("begin_wal"),
            item.get("end_wal"),
        )

    def ended(self) -> datetime | None:
        return parse_time(self.end_time)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    for parse in (datetime.fromisoformat, _barman_time):
        with contextlib.suppress(ValueError):
            moment = parse(text)
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def _barman_time(text: str) -> datetime:
    # barman-cloud-backup-list prints "Mon Dec  7 07:40:01 2026" in its console format and
    # ISO in JSON; accept both
    return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")


def _run(argv: list[str], target: BackupTarget, *, timeout: float, **extra: str) -> str:
    # barman-cloud-backup-list prints times without their zone: make them UTC, as the
    # backup's own session (PGTZ) and barman's clock (TZ) see them, so parse_time is right
    env = clean_env(**target.env(), PGTZ="UTC", TZ="UTC", **extra)
    try:
        result = run(argv, timeout=timeout, env=env)
    except EmbeddedPostgresError as exc:
        raise BackupError(str(exc)) from exc
    return result.stdout


# --- list ------------------------------------------------------------------------------------


def list_backups(target: BackupTarget) -> list[BackupInfo]:
    """The backups in ``target``'s bucket, oldest first."""
    out = _run(target.backup_list(), target, timeout=_LIST_TIMEOUT)
    try:
        items = json.loads(out).get("backups_list", [])
    except json.JSONDecodeError as exc:
        raise BackupError(f"barman-cloud-backup-list printed no JSON: {out[-500:]!r}") from exc
    backups = [BackupInfo.from_barman(i) for i in items]
    return sorted(backups, key=lambda b: b.ended() or datetime.min.replace(tzinfo=UTC))


def choose_backup(
    source: BackupTarget, backup_id: str | None = None, before: datetime | None = None
) -> BackupInfo:
    """The backup a restore to ``before`` (or to the end) starts from: ``backup_id`` if
    given, else the newest completed one that ended before ``before``."""
    return _choose(list_backups(source), backup_id, before)


def _choose(
    backups: list[BackupInfo], backup_id: str | None, before: datetime | None
) -> BackupInfo:
    done = [b for b in backups if b.status == "DONE"]
    if backup_id is not None:
        for b in backups:
            if b.backup_id == backup_id:
                if b.status != "DONE":
                    raise BackupError(f"backup {backup_id} is {b.status}, not DONE")
                return b
        raise BackupError(f"no backup {backup_id!r} in the bucket")
    if before is not None:
        done = [b for b in done if (e := b.ended()) is not None and e <= before]
    if not done:
        when = f" that ended before {before.isoformat()}" if before else ""
        raise BackupError(f"no completed backup{when} in the bucket")
    return done[-1]


# --- backup ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackupRun:
    backup: BackupInfo
    snapshot: LedgerSnapshot
    duration_s: float
    dr_copy: store.SyncReport | None
    started_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            **self.backup.as_json(),
            "duration_s": round(self.duration_s, 3),
            "ledger_lsn": self.snapshot.lsn,
            "ledger_totals": self.snapshot.totals,
            "dr_copy": self.dr_copy.as_json() if self.dr_copy is not None else None,
        }


@dataclass(frozen=True, slots=True)
class PrimaryServer:
    """The running primary a base backup reads (on this machine: barman-cloud-backup reads
    its data directory), reached as the superuser."""

    host: str
    port: int
    password: str
    describe: str
    user: str = SUPERUSER
    database: str = "steadypay"

    def url(self) -> str:
        return _url(self.host, self.port, self.user, self.password, self.database)


def take_backup(
    primary: BackupTarget,
    dr: BackupTarget | None,
    server: PrimaryServer,
    *,
    probe: LedgerProbe,
    say: Say = _quiet,
) -> BackupRun:
    """A base backup of the running server at ``host:port`` (barman-cloud-backup reads the data
    directory itself, as the user we run as: the embedded node's files stay ours, decision
    0002), the ledger snapshot and manifest beside it, then the DR copy."""
    started, started_at = time.monotonic(), datetime.now(UTC)
    before = {b.backup_id for b in list_backups(primary)}
    say(f"base backup of {server.describe} to {primary.bucket.url}")
    _run(
        primary.backup(server.host, server.port, server.user),
        primary,
        timeout=_BACKUP_TIMEOUT,
        PGPASSWORD=server.password,
        PGCONNECT_TIMEOUT="10",
    )
    new = [b for b in list_backups(primary) if b.backup_id not in before]
    if not new:
        raise BackupError("barman-cloud-backup succeeded but no new backup is listed")
    backup = new[-1]
    say(f"backup {backup.backup_id} done; recording the ledger's totals")
    snapshot = probe.snapshot(server.url())
    manifest = store.backup_manifest(primary, backup.backup_id)
    store.put_json(
        primary,
        f"ledger/{backup.backup_id}.json",
        {"backup_id": backup.backup_id, **asdict(snapshot), "manifest": manifest},
    )
    copied = None
    if dr is not None:
        say(f"copying to {dr.bucket.url}")
        copied = store.sync_to_dr(primary, dr)
    return BackupRun(backup, snapshot, time.monotonic() - started, copied, started_at)


def apply_retention(target: BackupTarget, days: int, *, dry_run: bool = False) -> str:
    """Delete backups (and the WAL only they need) outside ``RECOVERY WINDOW OF days DAYS``."""
    return _run(target.backup_delete(days, dry_run=dry_run), target, timeout=_BACKUP_TIMEOUT)


def _url(host: str, port: int, user: str, password: str, database: str) -> str:
    from urllib.parse import quote

    return f"postgresql://{quote(user)}:{quote(password, safe='')}@{host}:{port}/{quote(database)}"


# --- restore ---------------------------------------------------------------------------------


@dataclass(slots=True)
class RestoredNode:
    backup: BackupInfo
    node: EmbeddedPostgres
    restored_to: str
    duration_s: float

    def url(self) -> str:
        return self.node.url

    def as_json(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup.backup_id,
            "backup_end_time": self.backup.end_time,
            "restored_to": self.restored_to,
            "data_dir": str(self.node.data_dir),
            "duration_s": round(self.duration_s, 3),
        }


def target_problem(target_dir: Path) -> str | None:
    """Why restoring into ``target_dir`` would destroy something; None if it would not."""
    probe = EmbeddedPostgres(target_dir)
    if probe.is_running():
        return f"a PostgreSQL server is running on {probe.pgdata}"
    if probe.pgdata.exists() and any(probe.pgdata.iterdir()):
        return f"{probe.pgdata} is not empty"
    return None


def restore(
    source: BackupTarget,
    target_dir: Path,
    *,
    password_file: Path,
    backup_id: str | None = None,
    to_time: datetime | None = None,
    to_lsn: str | None = None,
    database: str = "steadypay",
    bin_dir: Path | None = None,
    overwrite: bool = False,
    timeout: float = 300.0,
    say: Say = _quiet,
) -> RestoredNode:
    """Restore a base backup into ``target_dir``/pgdata, recover (to ``to_time``, ``to_lsn``
    or the end of the archive) and start it as a promoted primary on a free loopback port.
    ``target_dir`` is laid out like a steadypay data directory; the superuser's password
    (``password_file``, the source's ``pg-password``) is copied beside it."""
    started = time.monotonic()
    node = EmbeddedPostgres(target_dir, database=database, bin_dir=bin_dir)
    if (problem := target_problem(target_dir)) is not None:
        if not overwrite:
            raise BackupError(f"refusing to restore into {target_dir}: {problem} (--yes overrides)")
        node.stop(mode="fast")
        shutil.rmtree(node.pgdata)
    if not password_file.is_file():
        raise BackupError(
            f"no superuser password file {password_file}: the restored cluster keeps the "
            "source's password; give the source data directory's pg-password"
        )
    backup = _choose(list_backups(source), backup_id, to_time)
    say(f"restoring backup {backup.backup_id} (ended {backup.end_time}) into {node.pgdata}")
    target_dir.mkdir(parents=True, exist_ok=True)
    _run(source.restore(backup.backup_id, node.pgdata), source, timeout=_BACKUP_TIMEOUT)
    node.pgdata.chmod(0o700)
    (node.pgdata / "recovery.signal").touch()
    if password_file.absolute() != node.password_file:
        shutil.copyfile(password_file, node.password_file)
    node.password_file.chmod(0o600)
    when = to_time.isoformat() if to_time is not None else None
    node.settings = {
        **recovery_parameters(source, target_time=when, target_lsn=to_lsn),
        "hot_standby": "on",
    }
    log_offset = node.log_file.stat().st_size if node.log_file.exists() else 0
    say("recovering from the archived WAL")
    try:
        node.start(timeout=timeout)
        _wait_promoted(node, time.monotonic() + timeout)
    except (EmbeddedPostgresError, BackupError) as exc:
        with contextlib.suppress(EmbeddedPostgresError):
            node.stop(mode="immediate")
        raise BackupError(
            f"recovery of backup {backup.backup_id} failed: {exc}\n--- {node.log_file} ---\n"
            f"{log_tail(node.log_file, log_offset)}"
        ) from exc
    restored_to = when or to_lsn or "end of the archive"
    return RestoredNode(backup, node, restored_to, time.monotonic() - started)


def _psql(node: EmbeddedPostgres, sql: str) -> str:
    argv = [
        str(node.bin_dir / "psql"),
        "--no-psqlrc",
        "--tuples-only",
        "--no-align",
        f"--host={node.host}",
        f"--port={node.port}",
        f"--username={SUPERUSER}",
        "--dbname=postgres",
        f"--command={sql}",
    ]
    password = node.password_file.read_text(encoding="utf-8").strip()
    return run(argv, timeout=30, env=clean_env(PGPASSWORD=password)).stdout.strip()


def _wait_promoted(node: EmbeddedPostgres, deadline: float) -> None:
    while _psql(node, "SELECT pg_is_in_recovery()") != "f":
        if not node.is_running():
            raise BackupError("PostgreSQL stopped during recovery")
        if time.monotonic() > deadline:
            raise BackupError("recovery did not finish in time")
        time.sleep(0.1)


# --- verify ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyResult:
    backup_id: str
    ok: bool
    verified_at: str
    duration_s: float
    restored_to: str | None
    audit_ok: bool | None
    totals_match: bool | None
    problems: list[str] = field(default_factory=list)
    backup_end_time: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def verify(
    source: BackupTarget,
    probe: LedgerProbe,
    scratch_dir: Path,
    *,
    password_file: Path,
    backup_id: str | None = None,
    to_time: datetime | None = None,
    database: str = "steadypay",
    bin_dir: Path | None = None,
    record: bool = True,
    say: Say = _quiet,
) -> VerifyResult:
    """Prove a backup by restoring it (the module docstring says how); record the outcome in
    ``verifications/<backup_id>.json``. Raises :class:`VerificationFailed` unless it passed."""
    started = time.monotonic()
    at = datetime.now(UTC).isoformat()
    backup = _choose(list_backups(source), backup_id, to_time)
    problems: list[str] = []
    audit_ok = totals_match = None
    restored_to = None
    expected = store.get_json(source, f"ledger/{backup.backup_id}.json")
    if expected is None:
        problems.append(
            f"no ledger record ledger/{backup.backup_id}.json beside the backup: nothing to "
            "compare the restore with (was it taken by `steadypay backup run`?)"
        )
    else:
        problems += _manifest_problems(expected.get("manifest", {}), source, backup.backup_id)
    if not problems:
        lsn = None if to_time is not None else str(expected["lsn"]) if expected else None
        try:
            with _scratch(scratch_dir) as directory:
                restored = restore(
                    source,
                    directory,
                    password_file=password_file,
                    backup_id=backup.backup_id,
                    to_time=to_time,
                    to_lsn=lsn,
                    database=database,
                    bin_dir=bin_dir,
                    say=say,
                )
                try:
                    restored_to = restored.restored_to
                    say("auditing the restored ledger")
                    audit_ok, report = probe.audit(restored.url())
                    if not audit_ok:
                        problems.append(f"the ledger audit failed on the restore: {report}")
                    if lsn is not None and expected is not None:
                        got = probe.totals(restored.url())
                        totals_match = got == expected["totals"]
                        if not totals_match:
                            problems.append(
                                f"the restored ledger differs from the source at {lsn}: "
                                f"expected {expected['totals']}, restored {got}"
                            )
                finally:
                    restored.node.stop(mode="immediate")
        except BackupError as exc:
            problems.append(str(exc))
    result = VerifyResult(
        backup.backup_id,
        not problems,
        at,
        round(time.monotonic() - started, 3),
        restored_to,
        audit_ok,
        totals_match,
        problems,
        backup.end_time,
    )
    if record:
        store.put_json(source, f"verifications/{backup.backup_id}.json", result.as_json())
    if problems:
        raise VerificationFailed(
            f"backup {backup.backup_id} FAILED verification:\n- " + "\n- ".join(problems),
            result,
        )
    return result


def verification_summary(source: BackupTarget, backup_id: str) -> dict[str, Any]:
    """The recorded outcome of ``backup_id``'s last verification (for ``backup list``)."""
    document = store.get_json(source, f"verifications/{backup_id}.json")
    if document is None:
        return {"verified": None, "verified_at": None}
    return {"verified": bool(document.get("ok")), "verified_at": document.get("verified_at")}


def _manifest_problems(
    manifest: dict[str, dict[str, Any]], source: BackupTarget, backup_id: str
) -> list[str]:
    now = store.backup_manifest(source, backup_id)
    if not manifest:
        return [f"the ledger record of {backup_id} lists no objects"]
    problems = []
    for key, expected in sorted(manifest.items()):
        found = now.get(key)
        if found is None:
            problems.append(f"object {key} of backup {backup_id} is missing from the bucket")
        elif found != expected and not store.is_copy_of(source, key, expected):
            problems.append(
                f"object {key} of backup {backup_id} changed since the backup "
                f"(ETag/size {expected} -> {found}): corrupted or replaced"
            )
    return problems


@contextlib.contextmanager
def _scratch(scratch_dir: Path) -> Iterator[Path]:
    directory = scratch_dir / f"verify-{time.strftime('%Y%m%dT%H%M%S')}-{time.monotonic_ns()}"
    directory.mkdir(parents=True)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def last_verified_backup_time(target: BackupTarget) -> datetime | None:
    """When the newest backup that passed verification ended (for the readiness check and a
    metric: the age of the newest proven backup); None if none has passed."""
    client = store.s3_client(target.region)
    prefix = f"{store.server_folder(target)}/verifications/"
    newest: datetime | None = None
    for obj in store.list_objects(client, target.bucket.bucket, prefix):
        document = store.get_json(target, obj.key[len(store.server_folder(target)) + 1 :])
        if not document or not document.get("ok"):
            continue
        ended = parse_time(document.get("backup_end_time"))
        if ended is not None and (newest is None or ended > newest):
            newest = ended
    return newest
