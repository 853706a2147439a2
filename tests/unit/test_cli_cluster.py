"""`steadypay up --db-nodes N` and `steadypay cluster ...`: what is refused before anything
starts, what a dry run leaves alone, and the watchdog's restarts, against a fake cluster."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import steadypay.cli.cluster
import steadypay.cli.up
from steadypay.cli.ha import ClusterWatchdog
from steadypay.cli.main import app
from steadypay.ha import ClusterError, MemberStatus


def member(name: str, role: str | None, **changes: Any) -> MemberStatus:
    index = int(name[-1])
    status = MemberStatus(
        name=name,
        role=role,  # type: ignore[arg-type]
        state="running" if role == "primary" else "streaming",
        timeline=1,
        lag_bytes=0,
        synchronous=role == "replica",
        postmaster_pid=1000 + index,
        patroni_pid=2000 + index,
        pg_port=5430 + index,
        rest_port=8000 + index,
        raft_port=9000 + index,
    )
    return replace(status, **changes)


def healthy() -> list[MemberStatus]:
    return [member("pg1", "primary"), member("pg2", "replica"), member("pg3", "replica")]


@dataclass
class FakeCluster:
    statuses: list[MemberStatus] = field(default_factory=healthy)
    calls: list[tuple[str, str | None]] = field(default_factory=list)
    closed: bool = False

    def status(self) -> list[MemberStatus]:
        return list(self.statuses)

    def switchover(self, candidate: str | None = None, timeout: float = 60.0) -> str:
        self.calls.append(("switchover", candidate))
        return candidate or "pg2"

    def failover(self, candidate: str, timeout: float = 60.0) -> str:
        self.calls.append(("failover", candidate))
        return candidate

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in list(os.environ):
        if name.upper().startswith("STEADYPAY_"):
            monkeypatch.delenv(name)
    return CliRunner()


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What `up` would have started: run_up's arguments, if it was called."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(steadypay.cli.up, "run_up", lambda *a, **kw: calls.append(kw))
    return calls


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    cluster = FakeCluster()
    monkeypatch.setattr(steadypay.cli.cluster, "open_cluster", lambda data_dir: cluster)
    return cluster


@pytest.mark.parametrize(
    ("nodes", "why"), [("2", "majority"), ("6", "at most 5"), ("40", "at most 5")]
)
def test_up_refuses_member_counts_without_a_useful_quorum(
    runner: CliRunner, started: list[dict[str, Any]], tmp_path: Path, nodes: str, why: str
) -> None:
    data_dir = tmp_path / "data"
    result = runner.invoke(app, ["up", "--db-nodes", nodes, "--data-dir", str(data_dir)])
    assert result.exit_code == 2, result.output
    assert why in " ".join(result.output.split())
    assert started == []
    assert not data_dir.exists()


def test_up_refuses_a_cluster_beside_an_external_database(
    runner: CliRunner, started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEADYPAY_DATABASE_URL", "postgresql://u:p@db.example.com/steadypay")
    result = runner.invoke(app, ["up", "--db-nodes", "3"])
    assert result.exit_code == 2, result.output
    assert "STEADYPAY_DATABASE_URL" in result.output
    assert started == []
    assert runner.invoke(app, ["up"]).exit_code == 0  # one node: the external database
    assert [call["db_nodes"] for call in started] == [1]


@pytest.mark.parametrize(
    ("argv", "nodes"), [([], 1), (["--db-nodes", "3"], 3), (["--db-nodes", "5"], 5)]
)
def test_up_passes_the_member_count_on_and_defaults_to_one_node(
    runner: CliRunner, started: list[dict[str, Any]], argv: list[str], nodes: int
) -> None:
    assert runner.invoke(app, ["up", *argv]).exit_code == 0
    assert [call["db_nodes"] for call in started] == [nodes]


def test_status_without_a_cluster_says_how_to_start_one(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["cluster", "status", "--json", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "steadypay up --db-nodes 3" in result.output


def test_status_json_lists_every_member_with_its_role_pids_and_ports(
    runner: CliRunner, fake: FakeCluster
) -> None:
    result = runner.invoke(app, ["cluster", "status", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert list(document) == ["members"]
    assert [(m["name"], m["role"]) for m in document["members"]] == [
        ("pg1", "primary"),
        ("pg2", "replica"),
        ("pg3", "replica"),
    ]
    assert document["members"][1] == {
        "name": "pg2",
        "role": "replica",
        "state": "streaming",
        "timeline": 1,
        "lag_bytes": 0,
        "synchronous": True,
        "postmaster_pid": 1002,
        "patroni_pid": 2002,
        "pg_port": 5432,
        "rest_port": 8002,
        "raft_port": 9002,
    }
    assert fake.closed


def test_status_exits_non_zero_without_a_primary(runner: CliRunner, fake: FakeCluster) -> None:
    fake.statuses = [member("pg1", None, state="stopped"), *healthy()[1:]]
    result = runner.invoke(app, ["cluster", "status"])
    assert result.exit_code == 1
    assert "pg1" in result.stdout
    assert "no primary" in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["switchover", "--dry-run"],
        ["switchover", "--candidate", "pg3", "--dry-run", "--yes"],
        ["failover", "--candidate", "pg2", "--dry-run"],
    ],
)
def test_a_dry_run_shows_the_plan_and_changes_nothing(
    runner: CliRunner, fake: FakeCluster, argv: list[str]
) -> None:
    result = runner.invoke(app, ["cluster", *argv])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(argv[0] + ": ")
    assert "pg1" in result.stdout  # the plan names the current primary
    assert "dry run: nothing changed" in result.stdout
    assert fake.calls == []


def test_without_yes_and_without_a_terminal_nothing_is_done(
    runner: CliRunner, fake: FakeCluster
) -> None:
    result = runner.invoke(app, ["cluster", "switchover"])
    assert result.exit_code == 1
    assert "--yes" in result.stderr
    assert fake.calls == []


def test_switchover_with_yes_prints_the_new_primary_and_the_time_it_took(
    runner: CliRunner, fake: FakeCluster
) -> None:
    result = runner.invoke(app, ["cluster", "switchover", "--candidate", "pg3", "--yes"])
    assert result.exit_code == 0, result.output
    assert fake.calls == [("switchover", "pg3")]
    assert "new primary: pg3 (took " in result.stdout


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["switchover", "--candidate", "pg9", "--yes"], "no member 'pg9'"),
        (["switchover", "--candidate", "pg1", "--yes"], "pg1 is the primary already"),
        (["failover", "--candidate", "pg1", "--yes"], "pg1 is the primary already"),
    ],
)
def test_impossible_changes_are_refused_before_patroni_is_asked(
    runner: CliRunner, fake: FakeCluster, argv: list[str], why: str
) -> None:
    result = runner.invoke(app, ["cluster", *argv])
    assert result.exit_code == 1
    assert why in " ".join(result.stderr.split())
    assert fake.calls == []


def test_failover_needs_a_candidate(runner: CliRunner, fake: FakeCluster) -> None:
    assert runner.invoke(app, ["cluster", "failover", "--yes"]).exit_code == 2
    assert fake.calls == []


def test_switchover_without_a_primary_points_to_failover(
    runner: CliRunner, fake: FakeCluster
) -> None:
    fake.statuses = [member("pg1", None, state="stopped"), *healthy()[1:]]
    result = runner.invoke(app, ["cluster", "switchover", "--yes"])
    assert result.exit_code == 1
    assert "cluster failover --candidate" in result.stderr
    assert fake.calls == []


@dataclass
class Members:
    """A cluster whose members' Patroni can die, and whose restarts can fail."""

    statuses: list[MemberStatus] = field(default_factory=healthy)
    failing: int = 0
    restarts: list[str] = field(default_factory=list)

    def status(self) -> list[MemberStatus]:
        return list(self.statuses)

    def restart_member(self, member: str, timeout: float = 90.0) -> MemberStatus:
        self.restarts.append(member)
        if self.failing:
            self.failing -= 1
            raise ClusterError("timed out waiting for pg2 to run again")
        index = next(i for i, s in enumerate(self.statuses) if s.name == member)
        self.statuses[index] = replace(self.statuses[index], patroni_pid=3000, state="streaming")
        return self.statuses[index]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_watchdog_restarts_a_member_whose_patroni_died() -> None:
    cluster, clock = Members(), Clock()
    watchdog = ClusterWatchdog(cluster, clock, every_s=2.0)
    assert watchdog() is None
    cluster.statuses[1] = replace(cluster.statuses[1], patroni_pid=None, state="down")
    clock.now += 1.0
    assert watchdog() is None  # not looked again yet
    clock.now += 1.0
    said = watchdog()
    assert said is not None
    assert "pg2" in said
    assert "restarted (replica, streaming)" in said
    assert cluster.restarts == ["pg2"]
    clock.now += 2.0
    assert watchdog() is None
    assert cluster.restarts == ["pg2"]


def test_the_watchdog_backs_off_after_failed_restarts() -> None:
    cluster, clock = Members(failing=2), Clock()
    watchdog = ClusterWatchdog(cluster, clock, every_s=0.5)
    cluster.statuses[1] = replace(cluster.statuses[1], patroni_pid=None, state="down")
    said = watchdog()
    assert said is not None
    assert "next try in 1 s" in said
    clock.now += 0.5
    assert watchdog() is None  # within the 1 s backoff
    clock.now += 0.5
    said = watchdog()
    assert said is not None
    assert "next try in 2 s" in said
    clock.now += 1.0
    assert watchdog() is None  # within the 2 s backoff
    clock.now += 1.0
    said = watchdog()
    assert said is not None
    assert "restarted" in said
    assert cluster.restarts == ["pg2", "pg2", "pg2"]


def test_the_watchdog_leaves_a_busy_member_alone() -> None:
    """Unreachable (its Patroni runs but does not answer) is not dead: no restart."""
    cluster = Members()
    cluster.statuses[2] = replace(cluster.statuses[2], state="unreachable", role=None)
    assert ClusterWatchdog(cluster, Clock())() is None
    assert cluster.restarts == []
