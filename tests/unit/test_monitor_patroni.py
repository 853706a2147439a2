"""The monitor's reading of a Patroni cluster: who is primary, who streams, a split brain."""

from __future__ import annotations

from typing import Any

import pytest

from steadypay.monitor.checks import PatroniClusterCheck, evaluate_patroni
from steadypay.monitor.domain import Status


def primary(name: str, location: int = 1000, **extra: Any) -> dict[str, Any]:
    return {
        "state": "running",
        "role": "primary",
        "timeline": 3,
        "xlog": {"location": location},
        "patroni": {"name": name},
    } | extra


def replica(name: str, replayed: int = 1000, state: str = "streaming") -> dict[str, Any]:
    return {
        "state": "running",
        "role": "replica",
        "replication_state": state,
        "timeline": 3,
        "xlog": {"received_location": replayed, "replayed_location": replayed},
        "patroni": {"name": name},
    }


def test_one_primary_and_streaming_replicas_pass_with_their_lag() -> None:
    status, detail, observed = evaluate_patroni(
        [("http://a", primary("pg1", 5000)), ("http://b", replica("pg2", 4000)),
         ("http://c", replica("pg3", 5000))]
    )  # fmt: skip

    assert (status, detail) == (Status.PASS, None)
    assert observed["primary"] == "pg1"
    lags = {m["name"]: m["lag_bytes"] for m in observed["members"]}
    assert lags == {"pg1": 0, "pg2": 1000, "pg3": 0}


def test_two_members_running_as_primary_is_a_split_brain() -> None:
    status, detail, observed = evaluate_patroni(
        [("http://a", primary("pg1")), ("http://b", primary("pg2")), ("http://c", replica("pg3"))]
    )

    assert status is Status.FAIL
    assert detail == "split brain: 2 members run as primary (pg1, pg2)"
    assert observed["primary"] is None


def test_no_primary_fails() -> None:
    crashed = primary("pg1") | {"state": "crashed"}
    status, detail, _ = evaluate_patroni(
        [("http://a", crashed), ("http://b", replica("pg2")), ("http://c", None)]
    )

    assert (status, detail) == (Status.FAIL, "no member runs as primary")


def test_a_member_down_or_not_streaming_degrades_the_cluster() -> None:
    status, detail, observed = evaluate_patroni(
        [("http://a", primary("pg1")), ("http://b", replica("pg2", state="in archive recovery")),
         ("http://c", None)]
    )  # fmt: skip

    assert status is Status.WARN
    assert detail == "degraded: pg2 in archive recovery; http://c unreachable"
    assert [m["role"] for m in observed["members"]] == ["primary", "replica", "unreachable"]


def test_a_primary_without_a_leader_key_is_reported() -> None:
    status, detail, _ = evaluate_patroni(
        [("http://a", primary("pg1", cluster_unlocked=True)), ("http://b", replica("pg2"))]
    )

    assert status is Status.WARN
    assert detail == "degraded: pg1 runs as primary but the DCS has no leader key"


def test_the_check_needs_a_url() -> None:
    with pytest.raises(ValueError, match="at least one"):
        PatroniClusterCheck(None, [], 1.0)  # type: ignore[arg-type]
