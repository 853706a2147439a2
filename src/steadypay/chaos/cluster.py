"""The three-member database of a chaos environment, and the faults thrown at it.

:class:`ClusterDatabase` wraps a :class:`~steadypay.ha.PatroniCluster` started in the
environment's directory. Patroni decides who the primary is; the faults here only do what
happens to real machines, and then watch what Patroni makes of it:

- :meth:`kill_primary_postmaster` — SIGKILL the primary's PostgreSQL (its Patroni lives on and
  hands the primary role over: about 2 s);
- :meth:`lose_primary_node` — SIGKILL the primary's Patroni and PostgreSQL, as if the machine
  were gone (the leader key expires after ``ttl``: about 20 s); :meth:`restart_member` brings
  the node back, and it rejoins as a replica through ``pg_rewind``;
- :meth:`kill_replica` — the same for a replica: writes go on with the other standby;
- :meth:`pause_replay` / :meth:`resume_replay` — a replica's replay stops (its startup
  process, which replays WAL, is SIGSTOPped): it keeps receiving, flushing and acknowledging
  WAL, so synchronous commits go on, but its data stops moving and its replay lag grows.
  ``pg_wal_replay_pause()`` cannot do this under Patroni: on PostgreSQL 14+ Patroni resumes a
  paused replay at its next HA loop ("Resuming paused WAL replay for PostgreSQL 14+", within
  a second), and it resets ``recovery_min_apply_delay`` set by ``ALTER SYSTEM`` as quickly;
- the partition of a member is the environment's: its fault proxy (one in front of each
  member) turns into a black hole (:meth:`~steadypay.chaos.environment.ChaosEnvironment.
  partition_primary`).

Every method blocks (the REST calls and the SQL are short and bounded); call them from the
experiment's thread, not from the environment's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import structlog

from steadypay.ha import SUPERUSER, ClusterError, MemberStatus, PatroniCluster
from steadypay.ha.status import describe, readiness_problem

log = structlog.get_logger(__name__)

POLL_S = 0.1


class ClusterDatabase:
    """A Patroni cluster of ``members`` in ``directory`` (``<environment>/cluster``)."""

    def __init__(self, directory: Path, members: int = 3) -> None:
        self.cluster = PatroniCluster(directory, members=members)
        self.replay_paused: dict[str, int] = {}
        """member → pid of the startup process :meth:`pause_replay` stopped"""

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, timeout: float) -> None:
        self.cluster.start(timeout=timeout)

    def stop(self, timeout: float = 60.0) -> None:
        self.cluster.stop(timeout=timeout)

    # --- where it is --------------------------------------------------------------------------
    def member_ports(self) -> dict[str, int]:
        """Each member's PostgreSQL port, in the layout's order."""
        return {m.name: m.pg_port for m in self.cluster.layout.members}

    def writer_url(self, ports: Mapping[str, int] | None = None) -> str:
        """The multi-host URL that finds the primary (``target_session_attrs=read-write``);
        with ``ports`` (member → port, e.g. the fault proxies'), through those ports."""
        url = self.cluster.dsn()
        if ports is None:
            return url
        parts = urlsplit(url)
        query = [
            (k, ",".join(str(ports[m]) for m in self.member_ports()) if k == "port" else v)
            for k, v in parse_qsl(parts.query)
        ]
        return urlunsplit(parts._replace(query=urlencode(query, safe=",")))

    def member_urls(self, ports: Mapping[str, int] | None = None) -> list[str]:
        """One URL per member, whatever its role (the router finds out which are standbys);
        with ``ports``, through those ports."""
        urls = []
        for member, port in self.member_ports().items():
            url = self.cluster.member_dsn(member)
            if ports is not None:
                url = url.replace(f":{port}/", f":{ports[member]}/", 1)
            urls.append(url)
        return urls

    # --- observing ----------------------------------------------------------------------------
    def status(self) -> list[MemberStatus]:
        return self.cluster.status()

    def primary_name(self) -> str:
        """The primary's name; :class:`~steadypay.ha.ClusterError` when there is none now."""
        return self.cluster.primary().name

    def replicas(self) -> list[str]:
        """The members that are replicas now, by name."""
        return sorted(s.name for s in self.status() if s.role == "replica")

    def wait_primary(self, other_than: str | None, within_s: float) -> tuple[str, float]:
        """Until one member other than ``other_than`` is the primary: (its name, seconds
        waited)."""
        started = time.monotonic()
        deadline = started + within_s
        while True:
            statuses = self.status()
            primaries = [s.name for s in statuses if s.role == "primary"]
            if len(primaries) == 1 and primaries[0] != other_than:
                return primaries[0], time.monotonic() - started
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"no new primary within {within_s:g} s (was {other_than}): "
                    + describe(statuses)
                )
            time.sleep(POLL_S)

    def wait_streaming(self, member: str, within_s: float) -> float:
        """Until ``member`` is a streaming replica on the primary's timeline; seconds waited."""
        started = time.monotonic()
        deadline = started + within_s
        while True:
            statuses = self.status()
            primary = next((s for s in statuses if s.role == "primary"), None)
            me = next(s for s in statuses if s.name == member)
            if (
                primary is not None
                and me.role == "replica"
                and me.state == "streaming"
                and me.timeline == primary.timeline
            ):
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{member} not streaming within {within_s:g} s: {describe(statuses)}"
                )
            time.sleep(POLL_S)

    def wait_ready(self, within_s: float) -> list[MemberStatus]:
        """Until one primary and every other member a streaming, synchronous replica."""
        return self.cluster.wait_ready(within_s)

    def is_ready(self) -> bool:
        return readiness_problem(self.status()) is None

    # --- faults -------------------------------------------------------------------------------
    def kill_postmaster(self, member: str) -> int:
        """SIGKILL ``member``'s postmaster (its Patroni lives on); the pid."""
        pid = self.cluster.kill_postmaster(member)
        log.warning("chaos_signal", service=f"postgresql {member}", signal="SIGKILL", pid=pid)
        return pid

    def kill_node(self, member: str) -> None:
        """SIGKILL ``member``'s Patroni, then its postmaster, as if its machine were lost."""
        patroni, postmaster = self.cluster.kill_node(member)
        log.warning(
            "chaos_signal",
            service=f"node {member}",
            signal="SIGKILL",
            patroni_pid=patroni,
            postmaster_pid=postmaster,
        )

    def kill_primary_postmaster(self) -> tuple[str, int]:
        """SIGKILL the primary's postmaster: (member, pid)."""
        member = self.primary_name()
        return member, self.kill_postmaster(member)

    def lose_primary_node(self) -> str:
        """SIGKILL the primary's Patroni and postmaster; the member's name."""
        member = self.primary_name()
        self.kill_node(member)
        return member

    def kill_replica(self) -> str:
        """SIGKILL a replica's Patroni and postmaster (the first by name); its name."""
        replicas = self.replicas()
        if not replicas:
            raise ClusterError(f"no replica to kill: {describe(self.status())}")
        self.kill_node(replicas[0])
        return replicas[0]

    def restart_member(self, member: str, timeout: float = 90.0) -> MemberStatus:
        """Start a member again (after a node kill); its status once it runs."""
        return self.cluster.restart_member(member, timeout=timeout)

    def pause_replay(self, member: str | None = None) -> str:
        """Stop replay on ``member`` (default: the first replica by name): SIGSTOP its
        startup process, found as the superuser in ``pg_stat_activity``."""
        member = member or next(iter(self.replicas()), None)
        if member is None:
            raise ClusterError(f"no replica to pause: {describe(self.status())}")
        pid = self._superuser_value(
            member, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'startup'"
        )
        if not isinstance(pid, int):
            raise ClusterError(f"{member} has no startup process (not a replica?)")
        os.kill(pid, signal.SIGSTOP)
        self.replay_paused[member] = pid
        log.warning("chaos_replay_paused", member=member, startup_pid=pid)
        return member

    def resume_replay(self) -> list[str]:
        """Replay goes on wherever :meth:`pause_replay` stopped it (SIGCONT)."""
        resumed = []
        for member, pid in sorted(self.replay_paused.items()):
            with contextlib.suppress(ProcessLookupError):  # its member restarted meanwhile
                os.kill(pid, signal.SIGCONT)
            resumed.append(member)
        self.replay_paused.clear()
        return resumed

    def restore(self, within_s: float) -> list[str]:
        """Undo the cluster's faults: replay resumed, every member whose Patroni is gone
        started again; then wait until the cluster is whole. What was done."""
        deadline = time.monotonic() + within_s
        done = [f"replay resumed on {m}" for m in self.resume_replay()]
        for status in self.status():
            if status.patroni_pid is None:
                self.restart_member(status.name, timeout=max(10.0, deadline - time.monotonic()))
                done.append(f"{status.name} restarted")
        self.wait_ready(max(5.0, deadline - time.monotonic()))
        return done

    # --- internals ----------------------------------------------------------------------------
    def _superuser_value(self, member: str, query: str) -> object:
        async def run() -> object:
            url = self.cluster.member_dsn(member, "postgres", user=SUPERUSER)
            conn = await asyncpg.connect(url, timeout=5)
            try:
                return await conn.fetchval(query, timeout=5)
            finally:
                await conn.close()

        return asyncio.run(run())


def member_of(address: str, ports: Mapping[str, int], proxies: Mapping[str, int]) -> str:
    """The member behind ``host:port`` (a member's own port or its proxy's), else the
    address itself (for the router's metrics, which name replicas by address)."""
    port = address.rsplit(":", 1)[-1]
    for member, member_port in ports.items():
        if port in (str(member_port), str(proxies.get(member, ""))):
            return member
    return address


def roles(statuses: Sequence[MemberStatus]) -> str:
    """``pg1=primary pg2=replica pg3=down`` for progress lines."""
    return " ".join(f"{s.name}={s.role or s.state}" for s in statuses)
