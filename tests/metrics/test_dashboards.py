"""The Prometheus rules, Grafana dashboard and docs/metrics.md use only metrics and labels chatobs really emits.

Names are checked against a real scrape of chatobs's Prometheus exposition (after every instrument has recorded
something), so the OTel -> Prometheus name translation (dots, unit suffixes, _total, _bucket) is the exporter's own.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from chatobs.core.stats import STATS
from chatobs.processing.metrics import recorder as metrics
from tests.conftest import REPO

from .helpers import Clock, chat_turn, llm_call, tool_call

_PREFIXES = ("gen_ai_", "mcp_", "chatobs_", "http_server_")
_PROMQL_WORDS = {
    "by",
    "without",
    "sum",
    "rate",
    "increase",
    "histogram_quantile",
    "max",
    "topk",
    "and",
    "or",
    "offset",
    "le",
    "label_values",
}


@pytest.fixture
def exposition(make_capture: Any) -> tuple[set[str], set[str], str]:
    """(sample names, label names, raw text) of a scrape after every instrument has recorded."""
    cap = make_capture(slow_tool_ms=100)
    clock = Clock()
    with chat_turn(clock):
        llm_call(clock, ttfc_s=0.3)
        tool_call(clock, duration_ms=300, with_server_span=True)
        tool_call(clock, tool="broken", error="tool_error")
    cap.spans()
    STATS.drop("pipeline", "queue_full", 0)
    STATS.failed["some-exporter"] += 0
    status, body, _ = metrics.render_prometheus()
    assert status == 200
    text = body.decode()
    names: set[str] = set()
    labels: set[str] = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.add(sample.name)
            labels.update(sample.labels)
    return names, labels, text


def _exprs_in_rules() -> list[str]:
    doc = yaml.safe_load((REPO / "docs" / "prometheus-alerts.yaml").read_text())
    exprs = [rule["expr"] for group in doc["groups"] for rule in group["rules"]]
    assert len(exprs) >= 10
    return exprs


def _exprs_in_dashboard() -> list[str]:
    doc = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in doc["templating"]["list"] if isinstance(v.get("query"), dict)]
    assert len(exprs) >= 20
    return exprs


def _check(exprs: list[str], names: set[str], labels: set[str]) -> set[str]:
    used_metrics: set[str] = set()
    for expr in exprs:
        for token in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", re.sub(r'"[^"]*"', '""', expr)):
            if token.startswith(_PREFIXES):
                assert token in names or token in labels, f"{token!r} in {expr!r} is neither a chatobs metric nor label"
                if token in names:
                    used_metrics.add(token)
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            for label in filter(None, (g.strip() for g in group.split(","))):
                assert label in labels, f"label {label!r} in {expr!r} is not one chatobs emits"
        for matchers in re.findall(r"\{([^}]*)\}", expr):
            for label in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
                assert label in labels, f"label {label!r} in {expr!r} is not one chatobs emits"
    return used_metrics


def test_prometheus_rules_use_emitted_metrics(exposition: tuple[set[str], set[str], str]) -> None:
    names, labels, _ = exposition
    used = _check(_exprs_in_rules(), names, labels)
    assert {"mcp_tool_duration_milliseconds_bucket", "chatobs_cost_usd_total", "mcp_tool_errors_total"} <= used


def test_grafana_dashboard_uses_emitted_metrics(exposition: tuple[set[str], set[str], str]) -> None:
    names, labels, _ = exposition
    used = _check(_exprs_in_dashboard(), names, labels)
    # The dashboard covers every instrument chatobs has.
    families = {
        n.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum").removesuffix("_total") for n in used
    }
    for instrument, (_, unit, _) in metrics.INSTRUMENTS.items():
        base = instrument.replace(".", "_")
        suffix = {"s": "_seconds", "ms": "_milliseconds"}.get(unit, "")
        assert base + suffix in families, f"{instrument} has no dashboard panel"


def test_the_check_itself_catches_a_wrong_name(exposition: tuple[set[str], set[str], str]) -> None:
    names, labels, _ = exposition
    with pytest.raises(AssertionError):
        _check(["rate(gen_ai_client_operation_duration_bucket[5m])"], names, labels)  # missing the _seconds unit
    with pytest.raises(AssertionError):
        _check(["sum by (tenant) (rate(chatobs_cost_usd_total[5m]))"], names, labels)


def test_metrics_doc_lists_every_instrument_and_rule_type() -> None:
    from chatobs.processing.alerts.rules import RULE_TYPES

    doc = (REPO / "docs" / "metrics.md").read_text()
    for instrument in metrics.INSTRUMENTS:
        assert f"`{instrument}`" in doc, f"docs/metrics.md does not list {instrument}"
    for rule_type in RULE_TYPES:
        assert f"`{rule_type}`" in doc, f"docs/metrics.md does not describe the {rule_type} rule"
