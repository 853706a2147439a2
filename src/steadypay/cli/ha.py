"""The database cluster (:mod:`steadypay.ha`) from the command line.

- :func:`started_cluster` — ``up --db-nodes N``: start the members in ``<data_dir>/cluster``
  (progress shown), yield the database, stop the members at the end.
- :class:`ClusterWatchdog` — under ``up``: restart a member whose Patroni process died.
- :func:`show_status`, :func:`change_primary` — ``steadypay cluster status``, ``switchover``
  and ``failover`` (:mod:`steadypay.cli.cluster` declares them).

Patroni decides who the primary is; these functions only ask it (through
:class:`~steadypay.ha.PatroniCluster`) and report what it says.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Literal, Protocol

from rich import box
from rich.console import Console
from rich.table import Table

from steadypay.cli.database import Target, cluster_for
from steadypay.config import Settings
from steadypay.ha import ClusterError, MemberStatus, PatroniCluster
from steadypay.resilience.retry import exponential_s

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0

Action = Literal["switchover", "failover"]


# --- `steadypay up --db-nodes N` -----------------------------------------------------------


@contextmanager
def started_cluster(
    settings: Settings,
    data_dir: Path,
    members: int,
    console: Console,
    *,
    timeout_s: float = START_TIMEOUT_S,
) -> Iterator[Target]:
    """Start (or resume) the cluster of ``members`` in ``<data_dir>/cluster``, showing its
    members' progress; yield it as the database; stop every member at the end, even when the
    start failed or was interrupted (Ctrl-C)."""
    cluster = cluster_for(settings, data_dir, members)
    if cluster.layout_file.is_file() and len(cluster.layout.members) != members:
        raise SystemExit(
            f"{cluster.data_dir} holds a cluster of {len(cluster.layout.members)} members, not "
            f"{members}: pass --db-nodes {len(cluster.layout.members)}, or another --data-dir."
        )
    try:
        try:
            _start_with_progress(cluster, members, console, timeout_s)
        except ClusterError as exc:
            message = f"the database cluster in {cluster.data_dir} did not start: {exc}"
            raise SystemExit(message) from exc
        yield Target(cluster.dsn(), None, cluster)
    finally:
        console.print("  stopping the database cluster…")
        try:
            cluster.stop(timeout=STOP_TIMEOUT_S)
        except ClusterError as exc:
            console.print(f"  [red]the database cluster did not stop cleanly:[/] {exc}")


def read_urls(cluster: PatroniCluster) -> str:
    """``STEADYPAY_DATABASE_READ_URLS`` for the services: every member, whatever its role (the
    API's router probes which are standbys and how far behind; the primary serves as such)."""
    return json.dumps([cluster.member_dsn(spec.name) for spec in cluster.layout.members])


def rest_urls(cluster: PatroniCluster) -> str:
    """``STEADYPAY_MONITOR_PATRONI_URLS`` for the monitor: every member's Patroni REST API."""
    host = cluster.layout.host
    host = f"[{host}]" if ":" in host else host
    return json.dumps([f"http://{host}:{spec.rest_port}" for spec in cluster.layout.members])


def member_lines(statuses: Sequence[MemberStatus], host: str) -> list[str]:
    """One line per member for `up`'s startup summary (no secrets)."""
    return [
        f"    {s.name:<5} {s.role or '?':<8} {host}:{s.pg_port:<6} "
        f"(Patroni REST :{s.rest_port}, Raft :{s.raft_port})"
        for s in statuses
    ]


def _start_with_progress(
    cluster: PatroniCluster, members: int, console: Console, timeout_s: float
) -> None:
    """``cluster.start()`` here, where Ctrl-C (and SIGTERM, made to act like it) interrupts
    it; a thread shows what the members are doing, read through a second
    :class:`PatroniCluster` on the same directory."""
    what = "resuming" if cluster.layout_file.is_file() else "creating"
    observer = PatroniCluster(cluster.data_dir)
    done = threading.Event()
    began = time.monotonic()
    with console.status(
        f"{what} the database cluster: {members} members under Patroni…"
    ) as spinner:

        def watch() -> None:
            while not done.wait(0.5):
                try:
                    line = ", ".join(
                        f"{s.name} {'primary' if s.role == 'primary' else s.state}"
                        for s in observer.status()
                    )
                except (ClusterError, OSError, ValueError):  # files not written yet
                    line = "creating the members"
                spinner.update(f"{what} the database cluster ({_since(began)}): {line}")

        thread = threading.Thread(target=watch, name="cluster-progress", daemon=True)
        thread.start()
        try:
            with _sigterm_interrupts():
                statuses = cluster.start(timeout=timeout_s)
        finally:
            done.set()
            thread.join(timeout=5)
            observer.close()
    primary = next(s.name for s in statuses if s.role == "primary")
    replicas = ", ".join(s.name for s in statuses if s.role == "replica")
    console.print(
        f"  database cluster ready in {_since(began)}: primary {primary}, "
        f"synchronous replicas {replicas}"
    )


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt here (Python's default would end the process at once,
    leaving the members it started running), as Ctrl-C does. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _since(began: float) -> str:
    return f"{time.monotonic() - began:.1f} s"


class Restartable(Protocol):
    def status(self) -> list[MemberStatus]: ...

    def restart_member(self, member: str, timeout: float = ...) -> MemberStatus: ...


class ClusterWatchdog:
    """Restarts, under `steadypay up`, a member whose Patroni process has died (a crash, a
    kill, the OOM killer): Patroni restarts a PostgreSQL that dies under it, but nothing else
    restarts Patroni. Looks every ``every_s``; each failed restart of a member waits longer
    before the next (1 s doubling to 30 s), so a broken member is not hammered. A restart
    blocks the supervisor's loop for at most ``restart_timeout_s``, like
    :class:`~steadypay.cli.up.PostgresWatchdog`."""

    def __init__(
        self,
        cluster: Restartable,
        clock: Callable[[], float] = time.monotonic,
        *,
        every_s: float = 2.0,
        restart_timeout_s: float = 30.0,
    ) -> None:
        self._cluster = cluster
        self._clock = clock
        self._every_s = every_s
        self._restart_timeout_s = restart_timeout_s
        self._next_look = 0.0
        self._next_try: dict[str, float] = {}
        self._failures: dict[str, int] = {}

    def __call__(self) -> str | None:
        now = self._clock()
        if now < self._next_look:
            return None
        self._next_look = now + self._every_s
        try:
            statuses = self._cluster.status()
        except ClusterError:
            return None  # unreadable for now (files being replaced): look again next time
        said = []
        for s in statuses:
            if s.patroni_pid is None and now >= self._next_try.get(s.name, 0.0):
                said.append(self._restart(s.name))
        return "\n  ".join(said) or None

    def _restart(self, member: str) -> str:
        label = f"db {member}"
        try:
            status = self._cluster.restart_member(member, timeout=self._restart_timeout_s)
        except ClusterError as exc:
            failures = self._failures.get(member, 0) + 1
            self._failures[member] = failures
            delay = exponential_s(failures - 1, base_s=1.0, cap_s=30.0)
            self._next_try[member] = self._clock() + delay
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return (
                f"{label:<14} Patroni stopped; restart failed, next try in {delay:.0f} s: {reason}"
            )
        self._failures.pop(member, None)
        self._next_try.pop(member, None)
        return f"{label:<14} Patroni stopped; restarted ({status.role or '?'}, {status.state})"


# --- `steadypay cluster status | switchover | failover` ------------------------------------


class Cluster(Protocol):
    def status(self) -> list[MemberStatus]: ...

    def switchover(self, candidate: str | None = None, timeout: float = ...) -> str: ...

    def failover(self, candidate: str, timeout: float = ...) -> str: ...


def status_document(statuses: Sequence[MemberStatus]) -> dict[str, list[dict[str, object]]]:
    """``cluster status --json``: ``{"members": [...]}``, one object per member with ``name``,
    ``role`` (``primary``, ``replica`` or null between roles), ``state``, ``timeline``,
    ``lag_bytes``, ``synchronous``, ``postmaster_pid``, ``patroni_pid`` and its ports
    (``pg_port``, ``rest_port``, ``raft_port``)."""
    return {"members": [s.as_dict() for s in statuses]}


def members_table(statuses: Sequence[MemberStatus], title: str | None = None) -> Table:
    """One row per member, in 80 columns: the caption names what the short headers mean."""
    table = Table(
        title=title,
        caption="TL: timeline; Lag: bytes of WAL behind the primary; pids of the postmaster (PM) "
        "and of Patroni; ports of PostgreSQL (PG), Patroni's REST API and Raft",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
    )
    for header in ("Member", "Role", "State", "TL", "Lag", "Sync"):
        table.add_column(header, justify="right" if header in ("TL", "Lag") else "left")
    for header in ("PM", "Patroni", "PG", "REST", "Raft"):
        table.add_column(header, justify="right")
    for s in statuses:
        role = {"primary": "[bold green]primary[/]", "replica": "replica"}.get(
            s.role or "", "[red]?[/]"
        )
        table.add_row(
            s.name,
            role,
            s.state,
            _dash(s.timeline),
            _dash(s.lag_bytes),
            "yes" if s.synchronous else "",
            _dash(s.postmaster_pid),
            _dash(s.patroni_pid),
            str(s.pg_port),
            str(s.rest_port),
            str(s.raft_port),
        )
    return table


def show_status(cluster: Cluster, *, as_json: bool, out: Console, err: Console) -> bool:
    """Print every member; whether there is exactly one primary."""
    statuses = cluster.status()
    if as_json:
        out.print_json(json.dumps(status_document(statuses)))
    else:
        out.print(members_table(statuses))
    primaries = [s.name for s in statuses if s.role == "primary"]
    if len(primaries) != 1:
        err.print(f"[red]no primary[/] ({len(primaries)} members say they are one)")
        return False
    return True


def plan(statuses: Sequence[MemberStatus], action: Action, candidate: str | None) -> str:
    """What ``action`` will do, in words; :class:`ClusterError` when it cannot be done."""
    by_name = {s.name: s for s in statuses}
    if candidate is not None and candidate not in by_name:
        raise ClusterError(f"no member {candidate!r}; members: {', '.join(by_name)}")
    primaries = [s for s in statuses if s.role == "primary"]
    primary = primaries[0] if len(primaries) == 1 else None
    if candidate is not None:
        if primary is not None and candidate == primary.name:
            raise ClusterError(f"{candidate} is the primary already")
        chosen = by_name[candidate]
        if chosen.role != "replica":
            raise ClusterError(
                f"{candidate} is not a replica ({chosen.state}): Patroni promotes only a "
                "running replica"
            )
    if action == "switchover":
        if primary is None:
            raise ClusterError(
                "no primary to hand over from: use `steadypay cluster failover --candidate NAME`"
            )
        if candidate is None:
            replicas = [s.name for s in statuses if s.role == "replica" and s.synchronous]
            if not replicas:
                raise ClusterError("no synchronous replica to hand over to")
            target = f"the synchronous replica Patroni picks ({' or '.join(replicas)})"
        else:
            target = f"{candidate} ({_describe(by_name[candidate])})"
        return (
            f"switchover: {primary.name}, the primary, hands over to {target}. {primary.name} "
            "is demoted cleanly and follows as a replica; writes pause for a few seconds "
            "(clients see 503 and retry with their Idempotency-Key)."
        )
    assert candidate is not None  # the command requires it for a failover
    if primary is not None:
        was = f"the primary {primary.name}, which is demoted and follows it as a replica"
    else:
        was = "no primary now; the old one rejoins as a replica when it is back (pg_rewind)"
    warning = (
        ""
        if by_name[candidate].synchronous
        else f" WARNING: {candidate} is not a synchronous standby: it may lack commits that "
        "were acknowledged to clients."
    )
    return f"failover: promote {candidate} ({_describe(by_name[candidate])}) now; {was}.{warning}"


def change_primary(
    cluster: Cluster,
    action: Action,
    *,
    candidate: str | None,
    dry_run: bool,
    yes: bool,
    interactive: bool,
    confirm: Callable[[str], bool],
    out: Console,
    err: Console,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """``cluster switchover`` / ``cluster failover``: show the plan, then (unless a dry run)
    ask, do it and print the new primary and how long it took. Whether it succeeded (a dry
    run that could be done counts as success)."""
    try:
        what = plan(cluster.status(), action, candidate)
    except ClusterError as exc:
        err.print(f"[red]cannot {action}:[/] {exc}")
        return False
    out.print(what)
    if dry_run:
        out.print("dry run: nothing changed.")
        return True
    if not yes:
        if not interactive:
            err.print(
                f"refusing to {action} without confirmation: stdin is no terminal; pass --yes"
            )
            return False
        if not confirm(f"{action} now?"):
            err.print("cancelled: nothing changed.")
            return False
    began = clock()
    try:
        if action == "switchover":
            new = cluster.switchover(candidate)
        else:
            assert candidate is not None
            new = cluster.failover(candidate)
    except ClusterError as exc:
        err.print(f"[red]{action} failed after {clock() - began:.1f} s:[/] {exc}")
        return False
    out.print(f"new primary: {new} (took {clock() - began:.1f} s)")
    out.print(members_table(cluster.status()))
    return True


def _describe(s: MemberStatus) -> str:
    sync = "synchronous" if s.synchronous else "not synchronous"
    return f"{s.role or '?'}, {s.state}, {sync}, lag {_dash(s.lag_bytes)} bytes"


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)
