"""deploy/: the Prometheus rules and the Grafana dashboard parse, have the structure their tools
need, and name only metrics steadypay exports."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY

import steadypay
from steadypay.resilience.events import default_metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "steadypay.json"

METRIC = re.compile(r"(?<![\w:])steadypay_[a-z0-9_]+")
RECORDED = re.compile(r"(?<![\w:])steadypay:[a-z0-9_:]+")
SEVERITIES = {"page", "ticket"}
# Grafana's variables, replaced by what they stand for so that the query parses as PromQL.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "6h",
    "${service}": "api",
    "$service": "api",
}
# Suffixes prometheus_client adds to a family's name in the exposition.
SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
}


def exported_metric_names() -> set[str]:
    """The series names steadypay's metrics produce: every module is imported (metrics are
    declared at module level), the lazily created resilience metrics are created, and each
    family on the default registry contributes its sample names."""
    skip = ("steadypay.migrations", "steadypay.__main__")
    for module in pkgutil.walk_packages(steadypay.__path__, "steadypay."):
        if not module.name.startswith(skip):
            importlib.import_module(module.name)
    default_metrics()
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type])
    return {n for n in names if n.startswith("steadypay_")}


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "record" in rule]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def dashboard_queries() -> list[str]:
    board = dashboard()
    queries = [t["expr"] for p in panels(board) for t in p.get("targets", [])]
    queries += [a["expr"] for a in board.get("annotations", {}).get("list", []) if "expr" in a]
    return queries


def variable_queries() -> list[str]:
    found = []
    for variable in dashboard()["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable["type"] == "query":
            found.append(query)
    return found


def as_promql(query: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        query = query.replace(variable, value)
    assert "$" not in query, f"an unknown Grafana variable in {query!r}"
    return query


def all_expressions() -> list[str]:
    return [r["expr"] for r in rules()] + dashboard_queries() + variable_queries()


def test_every_metric_named_in_deploy_is_exported() -> None:
    exported = exported_metric_names()
    assert "steadypay_http_requests_total" in exported  # the collection itself works
    assert "steadypay_http_request_duration_seconds_bucket" in exported
    assert "steadypay_http_requests" not in exported  # a counter is only its _total series
    named = {name for expr in all_expressions() for name in METRIC.findall(expr)}
    assert len(named) > 20
    missing = sorted(named - exported)
    assert not missing, f"deploy/ names metrics steadypay does not export: {missing}"


def test_recording_rules_used_are_defined() -> None:
    defined = {r["record"] for r in recording_rules()}
    for name in defined:
        assert re.fullmatch(r"steadypay:[a-z0-9_]+:[a-z0-9_]+", name), name
    used = {name for expr in all_expressions() for name in RECORDED.findall(expr)}
    assert used, "the burn-rate alerts and panels use the recording rules"
    assert used <= defined, f"undefined recording rules: {sorted(used - defined)}"


def test_every_expression_is_valid_promql() -> None:
    for expr in [r["expr"] for r in rules()] + dashboard_queries():
        try:
            promql_parser.parse(as_promql(expr))
        except ValueError as exc:
            pytest.fail(f"invalid PromQL {expr!r}: {exc}")


def test_invalid_promql_is_caught() -> None:
    with pytest.raises(ValueError, match="unclosed"):
        promql_parser.parse("sum(rate(steadypay_http_requests_total[5m])")


def test_alerts_have_what_alertmanager_and_the_on_call_need() -> None:
    found = alerts()
    assert found
    for alert in found:
        name = alert["alert"]
        assert re.fullmatch(r"Steadypay[A-Za-z]+", name), name
        assert alert.get("expr"), name
        assert re.fullmatch(r"\d+[smhd]", str(alert.get("for", ""))), f"{name}: for"
        assert alert.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity"
        assert alert.get("annotations", {}).get("summary"), f"{name}: summary"
    names = [a["alert"] for a in found]
    assert len(names) == len(set(names)), "alert names are unique"


def test_burn_rate_alerts_follow_the_sre_workbook() -> None:
    """Each alert pairs a long and a short window over the same multiple of the budget."""
    expected = {
        "SteadypayErrorBudgetBurnFast": ("rate1h", "rate5m", "14.4", "page"),
        "SteadypayErrorBudgetBurnMedium": ("rate6h", "rate30m", "6", "page"),
        "SteadypayErrorBudgetBurnSlow": ("rate3d", "rate6h", "1", "ticket"),
    }
    by_name = {a["alert"]: a for a in alerts()}
    for name, (long, short, factor, severity) in expected.items():
        alert = by_name[name]
        expr = " ".join(alert["expr"].split())
        assert f"steadypay:sli_error_ratio:{long} > ({factor} * 0.001)" in expr, name
        assert f"steadypay:sli_error_ratio:{short} > ({factor} * 0.001)" in expr, name
        assert " and " in expr, name
        assert alert["labels"]["severity"] == severity
    recorded = {r["record"]: r["expr"] for r in recording_rules()}
    for window in ("5m", "30m", "1h", "6h", "3d"):
        expr = recorded[f"steadypay:sli_error_ratio:rate{window}"]
        assert expr.count(f"[{window}]") == 2, window
        assert 'status=~"5.."' in expr
        assert "/health" in expr  # probes are not user traffic, as in the rollups


def test_operational_alerts_exist() -> None:
    names = {a["alert"] for a in alerts()}
    assert {
        "SteadypayCircuitOpen",
        "SteadypayOutboxOldestPendingHigh",
        "SteadypayLedgerCheckViolations",
        "SteadypayMonitorFailoverTriggered",
    } <= names


def test_dashboard_structure() -> None:
    board = dashboard()
    assert board["uid"]
    assert board["title"]
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    shown = [p for p in panels(board) if p["type"] != "row"]
    assert len(shown) > 20
    for panel in shown:
        assert panel.get("title"), panel["id"]
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target.get("expr"), panel["title"]
            assert target.get("refId"), panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]  # Grafana's grid is 24 wide
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "service"} <= variables
    titles = " ".join(p["title"].lower() for p in panels(board))
    for topic in ("route", "transfers", "holds", "outbox", "circuit", "pool", "burn"):
        assert topic in titles, topic


def test_prometheus_config_loads_the_rules() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {"steadypay-api", "steadypay-fraud", "steadypay-notifications"} <= jobs
