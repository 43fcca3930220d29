"""The Grafana dashboards: every panel asks for metrics the gateway exports (a real
Prometheus scraping a served gateway answers every panel's query: tests/e2e/test_grafana.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from routatic_asgi.telemetry.metrics import BREAKER_STATES, CREDENTIAL_STATES, Metrics

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
METRIC = re.compile(r"\broutatic_[a-z_]+")
RATE_INTERVAL = "30s"  # what Grafana's $__rate_interval becomes in these tests


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL) for every target of every panel."""
    found = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                found.append((path.stem, panel["title"], target["expr"]))
    return found


VARIABLES = ("job", "instance", "provider", "route")
HIT_RATIO = "Cache hit ratio by provider and model"


def as_grafana_sends(expr: str) -> str:
    """The query with every variable at "All" (its allValue, `.*`)."""
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    for name in VARIABLES:
        expr = expr.replace(f"${name}", ".*")
    return expr


def test_every_panel_is_filtered_described_and_shares_the_crosshair() -> None:
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["graphTooltip"] == 1, path.stem  # shared crosshair
        names = [v["name"] for v in dashboard["templating"]["list"]]
        assert set(VARIABLES) <= set(names), path.stem
        for variable in dashboard["templating"]["list"]:
            if variable["name"] in VARIABLES:
                assert variable["includeAll"] and variable["allValue"] == ".*"
        for panel in dashboard["panels"]:
            assert panel.get("description"), f"{path.stem}: {panel['title']} has no description"
            for target in panel["targets"]:
                selectors = re.findall(r"routatic_[a-z_]+\{[^}]*\}", target["expr"])
                assert selectors and len(selectors) == len(METRIC.findall(target["expr"]))
                for selector in selectors:
                    assert 'job=~"$job"' in selector and 'instance=~"$instance"' in selector
                    if re.search(r"_(tokens|upstream_attempts|breaker_state)", selector):
                        assert 'provider=~"$provider"' in selector
                    if selector.startswith("routatic_requests_total"):
                        assert 'route=~"$route"' in selector
    overview = {p["title"]: p for p in json.loads(DASHBOARDS[0].read_text())["panels"]}
    ratio = overview["Error ratio"]["fieldConfig"]["defaults"]
    assert [step["value"] for step in ratio["thresholds"]["steps"]] == [None, 0.05, 0.25]
    assert overview["Tokens by provider"]["fieldConfig"]["defaults"]["unit"] == "suffix: tokens/s"
    hits = overview[HIT_RATIO]["fieldConfig"]["defaults"]
    assert (hits["unit"], hits["min"], hits["max"]) == ("percentunit", 0, 1)


def exported() -> set[str]:
    return Metrics(CollectorRegistry()).names()


def test_the_overview_and_resilience_dashboards_exist_and_are_provisioned() -> None:
    titles = {json.loads(p.read_text())["uid"] for p in DASHBOARDS}
    assert {"routatic-overview", "routatic-resilience"} <= titles
    provisioning = ROOT / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert datasources["datasources"][0]["type"] == "prometheus"
    dashboards = yaml.safe_load((provisioning / "dashboards" / "routatic.yml").read_text())
    assert dashboards["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/routatic"


def test_every_metric_in_every_panel_and_alert_is_one_the_app_exports() -> None:
    names = exported()
    queries = [expr for _, _, expr in panel_queries()]
    queries += [rule["expr"] for group in yaml.safe_load(ALERTS.read_text())["groups"]
                for rule in group["rules"]]  # fmt: skip
    used = {name for expr in queries for name in METRIC.findall(expr)}
    assert used, "no routatic_ metric found in any query"
    assert used <= names, f"not exported by the app: {sorted(used - names)}"
    # and every metric family an operator watches appears on a dashboard
    families = {re.sub(r"_(total|bucket|sum|count|created)$", "", name) for name in used}
    for family in (
        "routatic_breaker_state",
        "routatic_credential_state",
        "routatic_state_store_degraded",
        "routatic_short_circuits",
        "routatic_upstream_ttfb_seconds",
        "routatic_tokens",
        "routatic_fallbacks",
    ):
        assert family in families  # fmt: skip


STATE_GAUGES = (
    ("routatic_breaker_state", "Breaker state", BREAKER_STATES),
    ("routatic_credential_state", "Credential state", CREDENTIAL_STATES),
)


def test_a_state_has_one_name_on_the_dashboard_and_in_the_metrics_help() -> None:
    """Each value of a state gauge is named as /status names the state (transitions.py), in
    the panel's value mappings and the metric's help (the README's table of metrics:
    tests/test_readme_reference.py)."""
    resilience = json.loads((ROOT / "grafana" / "dashboards" / "resilience.json").read_text())
    panels = {panel["title"]: panel for panel in resilience["panels"]}
    helps = {family.name: family.documentation for family in Metrics(CollectorRegistry()).registry.collect()}
    for metric, title, states in STATE_GAUGES:
        [mapping] = panels[title]["fieldConfig"]["defaults"]["mappings"]
        shown = {int(value): option["text"] for value, option in mapping["options"].items()}
        assert shown == {number: str(state) for state, number in states.items()}, title
        for state, number in states.items():
            assert f"{number} {state}" in helps[metric], metric


# --- a real Prometheus --------------------------------------------------------------------
