"""What each member is doing, from what its Patroni says (``GET /patroni``) and what the DCS
says (``GET /cluster``): Patroni is the authority on who the primary is."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from steadypay.ha.layout import ClusterError, ClusterLayout

Role = Literal["primary", "replica"]
_POLL_S = 0.2


@dataclass(frozen=True)
class MemberStatus:
    """One member, as ``steadypay cluster status`` lists it.

    ``role`` is None when the member does not answer or is between roles (a primary whose
    PostgreSQL died, an old primary not yet demoted). ``state`` is Patroni's word for its
    PostgreSQL ("running" for the primary, "streaming" for a replica that streams, "stopped",
    "crashed", "creating replica", ...), "unreachable" when its Patroni runs but does not
    answer, "down" when its Patroni does not run. ``lag_bytes`` is how far its replay is
    behind the primary's flushed WAL (0 for the primary; None when unknown).
    """

    name: str
    role: Role | None
    state: str
    timeline: int | None
    lag_bytes: int | None
    synchronous: bool
    postmaster_pid: int | None
    patroni_pid: int | None
    pg_port: int
    rest_port: int
    raft_port: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def leader_name(cluster_view: Mapping[str, Any] | None) -> str | None:
    """The member holding the leader key according to the DCS."""
    for member in (cluster_view or {}).get("members", []):
        if member.get("role") == "leader":
            return str(member["name"])
    return None


def build_statuses(
    layout: ClusterLayout,
    states: Mapping[str, Mapping[str, Any] | None],
    cluster_view: Mapping[str, Any] | None,
    pids: Mapping[str, tuple[int | None, int | None]],
) -> list[MemberStatus]:
    """Combine each member's ``/patroni`` (``states``), the DCS view and the process ids
    (``pids``: name -> (postmaster, patroni)) into one record per member."""
    leader = leader_name(cluster_view)
    primary_lsn: int | None = None
    if leader is not None and (doc := states.get(leader)) and doc.get("role") == "primary":
        primary_lsn = _int(doc.get("xlog", {}).get("location"))
    records = []
    for spec in layout.members:
        postmaster_pid, patroni_pid = pids.get(spec.name, (None, None))
        doc = states.get(spec.name)
        role: Role | None = None
        lag: int | None = None
        synchronous = False
        timeline: int | None = None
        if doc is None:
            state = "unreachable" if patroni_pid is not None else "down"
        else:
            state = str(doc.get("replication_state") or doc.get("state") or "unknown")
            timeline = _int(doc.get("timeline"))
            running = doc.get("state") == "running"
            if doc.get("role") == "primary" and running and spec.name == leader:
                role, lag = "primary", 0
            elif doc.get("role") == "replica":
                role = "replica"
                synchronous = bool(doc.get("quorum_standby") or doc.get("sync_standby"))
                replayed = _int(doc.get("xlog", {}).get("replayed_location"))
                if running and primary_lsn is not None and replayed is not None:
                    lag = max(0, primary_lsn - replayed)
        records.append(
            MemberStatus(
                name=spec.name,
                role=role,
                state=state,
                timeline=timeline,
                lag_bytes=lag,
                synchronous=synchronous,
                postmaster_pid=postmaster_pid,
                patroni_pid=patroni_pid,
                pg_port=spec.pg_port,
                rest_port=spec.rest_port,
                raft_port=spec.raft_port,
            )
        )
    return records


def readiness_problem(statuses: Sequence[MemberStatus]) -> str | None:
    """None when there is one primary and every other member is a streaming, synchronous
    replica on its timeline; else what is not there yet."""
    primaries = [s for s in statuses if s.role == "primary"]
    if len(primaries) != 1:
        return f"{len(primaries)} primaries; " + describe(statuses)
    timeline = primaries[0].timeline
    for s in statuses:
        if s.role == "primary":
            continue
        if s.role != "replica" or s.state != "streaming":
            return f"{s.name} is not a streaming replica; " + describe(statuses)
        if not s.synchronous:
            return f"{s.name} is not in the synchronous quorum yet; " + describe(statuses)
        if s.timeline != timeline:
            return f"{s.name} is on timeline {s.timeline}, not {timeline}; " + describe(statuses)
    return None


def describe(statuses: Sequence[MemberStatus]) -> str:
    """One line for error messages: ``pg1=primary/running tl 1, pg2=replica/streaming ...``."""
    return ", ".join(
        f"{s.name}={s.role or '?'}/{s.state} tl {s.timeline} lag {s.lag_bytes}" for s in statuses
    )


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def wait_for(
    status: Callable[[], list[MemberStatus]],
    what: str,
    condition: Callable[[list[MemberStatus]], bool],
    deadline: float,
) -> list[MemberStatus]:
    """Poll ``status()`` until ``condition`` holds; :class:`ClusterError` at ``deadline``."""
    while True:
        statuses = status()
        if condition(statuses):
            return statuses
        if time.monotonic() >= deadline:
            raise ClusterError(f"timed out waiting for {what}: {describe(statuses)}")
        time.sleep(_POLL_S)
