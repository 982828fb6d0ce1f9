"""Alerts: rules from settings and YAML, the turn that fired them, and sinks that never hurt the app."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from chatobs.config import ConfigError, load_settings
from chatobs.core import semconv
from chatobs.core.stats import STATS
from chatobs.processing.alerts import rules as alerts
from chatobs.processing.alerts.sinks import Alert, WebhookSender

from .helpers import Clock, WebhookReceiver, chat_turn, count, llm_call, server_tool_call, tool_call, total


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # Same retry logic, shorter pauses: the tests wait for retries to finish.
    monkeypatch.setattr(WebhookSender, "BACKOFF_S", (0.05, 0.1, 0.2))


def _join() -> None:
    stage = alerts.current()
    assert stage is not None
    assert stage.join(10)


def test_slow_tool_fires_one_alert_per_call_with_its_trace_id(
    make_capture: Any, webhook: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    cap = make_capture(
        slow_tool_ms=100,
        alert_webhook_url=webhook.url,
        alert_cooldown_s=0,
        viewer_url="http://127.0.0.1:8000/_chatobs/",
    )
    clock = Clock()
    trace_ids = []
    with caplog.at_level(logging.WARNING, logger="chatobs.alerts"):
        for i in range(3):
            with chat_turn(clock, conversation_id=f"c-{i}") as root:
                tool_call(clock, tool="slow_lookup", duration_ms=150, with_server_span=True)  # client + server span
                tool_call(clock, tool="fast_lookup", duration_ms=20)
            trace_ids.append(format(root.get_span_context().trace_id, "032x"))
        cap.runtime.force_flush()
        _join()
    assert [a["trace_id"] for a in webhook.received] == trace_ids
    first = webhook.received[0]
    assert first["rule"] == "slow_tool" and first["type"] == "slow_tool"
    assert first["subject"] == {"tool": "slow_lookup", "server": "kb"}
    assert first["figures"]["threshold_ms"] == 100 and 140 <= first["figures"]["duration_ms"] <= 150
    assert len(first["span_id"]) == 16 and first["conversation_id"] == "c-0"
    assert first["viewer_url"] == f"http://127.0.0.1:8000/_chatobs/#/t/{trace_ids[0]}"
    records = [r for r in caplog.records if r.name == "chatobs.alerts"]
    assert len(records) == 3 and all(r.levelno == logging.WARNING for r in records)
    assert trace_ids[0] in records[0].getMessage() and records[0].trace_id == trace_ids[0]  # type: ignore[attr-defined]
    assert records[0].chatobs_alert["figures"]["threshold_ms"] == 100  # type: ignore[attr-defined]


def test_a_server_span_owns_the_call_only_when_no_chatobs_client_traced_it(
    make_capture: Any, reader: InMemoryMetricReader
) -> None:
    got: list[Alert] = []
    remove = alerts.on_alert(got.append)
    try:
        cap = make_capture(slow_tool_ms=100, alert_cooldown_s=0)
        clock = Clock()
        server_tool_call(clock, tool="untraced_caller", duration_ms=150)  # e.g. called by the MCP inspector
        server_tool_call(clock, tool="traced_caller", duration_ms=150, caller_traced=True)  # its client span counts
        cap.runtime.force_flush()
        _join()
    finally:
        remove()
    assert [a.subject["tool"] for a in got] == ["untraced_caller"]
    assert total(reader, "mcp.tool.invocations", **{semconv.GEN_AI_TOOL_NAME: "untraced_caller"}) == 1
    assert count(reader, "mcp.tool.duration", **{semconv.GEN_AI_TOOL_NAME: "untraced_caller"}) == 1
    assert total(reader, "mcp.tool.invocations", **{semconv.GEN_AI_TOOL_NAME: "traced_caller"}) == 0
    assert count(reader, "mcp.server.operation.duration") == 2  # the server's own view keeps every span


def test_slow_flag_from_the_mcp_instrumentation_fires_too(make_capture: Any) -> None:
    got: list[Alert] = []
    remove = alerts.on_alert(got.append)
    try:
        cap = make_capture(slow_tool_ms=5000)
        span = tool_call(Clock(), duration_ms=10)
        # The MCP adapter marks slow calls itself (it may time the call more precisely than span timestamps).
        from chatobs.core import semconv
        from chatobs.runtime.wiring import get_tracer

        s = get_tracer().start_span("tools/call flagged", attributes={**span.attributes, semconv.SLOW: True})  # type: ignore[arg-type]
        s.end()
        cap.runtime.force_flush()
        _join()
    finally:
        remove()
    assert [a.subject["tool"] for a in got] == ["search_kb"]


def test_failing_webhook_never_slows_a_request(make_capture: Any) -> None:
    hung = WebhookReceiver()
    hung.gate = threading.Event()  # the receiver accepts the connection and then hangs
    try:
        cap = make_capture(slow_tool_ms=100, alert_webhook_url=hung.url, alert_cooldown_s=0, alert_webhook_timeout_s=30)
        clock = Clock()
        started = time.perf_counter()
        for i in range(5):
            with chat_turn(clock):
                tool_call(clock, tool=f"t{i}", duration_ms=200)
        request_path_s = time.perf_counter() - started
        # The whole pipeline (and so every exporter) still moves while the webhook hangs.
        assert len(cap.spans()) == 10
        assert hung.received == []
        assert request_path_s < 1.0  # generous: the hung receiver holds each POST up to 10 s
    finally:
        hung.close()


def test_unreachable_webhook_is_retried_then_given_up(make_capture: Any) -> None:
    dead = WebhookReceiver()
    url = dead.url
    dead.close()  # nothing listens there any more
    before = STATS.dropped[("alert_webhook", "send_failed")]
    cap = make_capture(slow_tool_ms=100, alert_webhook_url=url)
    with chat_turn(Clock()) as _:
        pass
    tool_call(Clock(), duration_ms=300)
    assert len(cap.spans()) == 2
    stage = alerts.current()
    assert stage is not None and stage.join(10)  # 3 retries with backoff
    assert STATS.dropped[("alert_webhook", "send_failed")] == before + 1


def test_webhook_retries_a_5xx(make_capture: Any) -> None:
    flaky = WebhookReceiver(fail_first=1)
    try:
        cap = make_capture(slow_tool_ms=100, alert_webhook_url=flaky.url)
        tool_call(Clock(), duration_ms=300)
        cap.runtime.force_flush()
        _join()
        assert flaky.attempts == 2 and len(flaky.received) == 1
    finally:
        flaky.close()


@pytest.mark.parametrize(("cooldown", "most"), [(300.0, 1), (0.0, 20)])
def test_a_burst_of_slow_calls_does_not_send_a_webhook_each(
    make_capture: Any, webhook: WebhookReceiver, cooldown: float, most: int
) -> None:
    got: list[Alert] = []
    remove = alerts.on_alert(got.append)
    try:
        started = time.monotonic()
        cap = make_capture(
            slow_tool_ms=100, alert_webhook_url=webhook.url, alert_cooldown_s=cooldown, alert_webhook_max_per_minute=20
        )
        clock = Clock()
        for i in range(1000):
            tool_call(clock, tool="slow_lookup", duration_ms=150, request_id=i)
        cap.runtime.force_flush()
        _join()
        elapsed_s = time.monotonic() - started
    finally:
        remove()
    # The rate limiter refills 20 per minute: a slow run may earn one or two more.
    assert 1 <= len(webhook.received) <= most + int(elapsed_s * 20 / 60) + 1
    if cooldown:
        assert len(got) == 1 and len(webhook.received) == 1  # the cooldown holds back the other 999 for every sink
        stage = alerts.current()
        assert stage is not None and stage.dispatcher.suppressed == 999
    else:
        assert len(got) == 1000  # no cooldown: the log and callbacks get each; the webhook is rate limited


def test_callbacks_and_a_failing_callback(make_capture: Any) -> None:
    got: list[Alert] = []

    def broken(alert: Alert) -> None:
        raise RuntimeError("callback bug")

    removers = [alerts.on_alert(broken), alerts.on_alert(got.append)]
    try:
        cap = make_capture(slow_tool_ms=100)
        tool_call(Clock(), duration_ms=300)
        assert len(cap.spans()) == 1
        _join()
    finally:
        for r in removers:
            r()
    assert len(got) == 1 and got[0].figures["threshold_ms"] == 100


def _rules_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alerts.yaml"
    path.write_text(text)
    return path


def test_yaml_rules_error_rate_budget_spike_latency(make_capture: Any, tmp_path: Path) -> None:
    path = _rules_file(
        tmp_path,
        """
rules:
  - name: slow_tool           # same name as the default rule: replaces it
    type: slow_tool
    threshold_ms: 1000
  - name: llm-errors
    type: error_rate
    target: llm
    threshold: 0.3
    window_s: 60
    min_count: 5
  - name: tenant-budget
    type: budget
    by: tenant
    max_usd: 0.01
    window_s: 3600
  - name: cost-spike
    type: spike
    metric: cost
    factor: 3
    window_s: 60
  - name: llm-p90
    type: latency
    target: llm
    percentile: 90
    threshold_ms: 2000
    window_s: 600
    min_count: 10
""",
    )
    got: list[Alert] = []
    remove = alerts.on_alert(got.append)
    try:
        cap = make_capture(alerts_file=str(path), alert_cooldown_s=0)
        clock = Clock(start_s=1_800_000_000)
        # Four quiet minutes: one cheap, fast, successful call per minute (baseline for the spike rule).
        for _ in range(4):
            llm_call(clock, cost=0.0001, duration_ms=100)
            clock.advance(60_000)
        tool_call(clock, duration_ms=500)  # below the YAML slow-tool threshold (the default 5000 ms was replaced)
        # Then a bad minute: failing, slow and expensive calls for tenant acme.
        with chat_turn(clock, tenant_id="acme"):
            for i in range(10):
                llm_call(clock, cost=0.002, duration_ms=2500, error="APIError" if i % 2 else None)
        cap.runtime.force_flush()
        _join()
    finally:
        remove()
    by_rule: dict[str, list[Alert]] = {}
    for a in got:
        by_rule.setdefault(a.rule, []).append(a)
    assert set(by_rule) == {"llm-errors", "tenant-budget", "cost-spike", "llm-p90"}
    err = by_rule["llm-errors"][0]
    assert err.figures["error_rate"] > 0.3 and err.figures["calls"] >= 5 and err.subject == {"target": "llm"}
    budget = by_rule["tenant-budget"][0]
    assert budget.subject == {"tenant": "acme"} and budget.figures["cost_usd"] > 0.01
    spike = by_rule["cost-spike"][0]
    assert spike.figures["ratio"] > 3 and spike.figures["baseline"] == pytest.approx(0.0001)
    p90 = by_rule["llm-p90"][0]
    assert p90.figures["p90_ms"] == pytest.approx(2500) and p90.subject == {"target": "llm", "percentile": "p90"}
    assert all(len(a.trace_id) == 32 and len(a.span_id) == 16 for a in got)


def test_settings_rules(make_capture: Any) -> None:
    got: list[Alert] = []
    remove = alerts.on_alert(got.append)
    try:
        cap = make_capture(
            alert_budget_usd=0.005, alert_budget_by="conversation", alert_error_rate=0.5, alert_cooldown_s=0
        )
        clock = Clock()
        with chat_turn(clock, conversation_id="pricey"):
            for _ in range(3):
                llm_call(clock, cost=0.002)
        for _ in range(10):
            tool_call(clock, error="tool_error")
        cap.runtime.force_flush()
        _join()
    finally:
        remove()
    rules = {a.rule for a in got}
    assert rules == {"conversation_budget", "tool_error_rate"}
    assert next(a for a in got if a.rule == "conversation_budget").subject == {"conversation": "pricey"}


def test_alerts_are_counted_as_a_metric(make_capture: Any, reader: Any) -> None:
    from chatobs.core import semconv

    from .helpers import total

    cap = make_capture(slow_tool_ms=100)  # default cooldown: one sent, both counted
    tool_call(Clock(), duration_ms=300, request_id=1)
    tool_call(Clock(), duration_ms=300, request_id=2)
    cap.runtime.force_flush()
    assert total(reader, "chatobs.alerts", **{semconv.ALERT_RULE: "slow_tool"}) == 2


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("rules: 3", "expected a mapping with a `rules:` list"),
        ("rules:\n  - type: slow_tool\n    threshold_ms: 5", "rule 1: `name` is required"),
        ("rules:\n  - name: x\n    type: sloww", "rule 1 ('x'): unknown type 'sloww'"),
        (
            "rules:\n  - name: x\n    type: budget\n    by: planet\n    max_usd: 1",
            "`by`='planet': expected one of conversation, user, tenant",
        ),
        ("rules:\n  - name: x\n    type: error_rate\n    target: llm", "`threshold` is required"),
        (
            "rules:\n  - name: x\n    type: error_rate\n    target: llm\n    threshold: 5",
            "expected a fraction in [0, 1]",
        ),
        (
            "rules:\n  - name: x\n    type: latency\n    target: llm\n    threshold_ms: fast",
            "`threshold_ms`='fast': expected a number",
        ),
        ("rules:\n  - name: x\n    type: slow_tool\n    threshold_ms: 5\n    color: red", "unknown field 'color'"),
        ("rules: [\n", "cannot read it as YAML"),
    ],
)
def test_bad_alert_files_are_rejected_with_a_clear_message(tmp_path: Path, text: str, expect: str) -> None:
    path = _rules_file(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings(alerts_file=str(path))
    assert expect in str(err.value) and "CHATOBS_ALERTS_FILE" in str(err.value)


def test_disabling_the_default_slow_tool_rule(make_capture: Any, tmp_path: Path) -> None:
    path = _rules_file(tmp_path, "rules:\n  - name: slow_tool\n    enabled: false\n")
    cap = make_capture(alerts_file=str(path), slow_tool_ms=1)
    stage = alerts.current()
    assert stage is not None and stage.rules == []
    assert cap is not None


def test_bad_webhook_url_is_rejected() -> None:
    with pytest.raises(ConfigError, match="CHATOBS_ALERT_WEBHOOK_URL: expected an http"):
        load_settings(alert_webhook_url="ftp://example.com/x")


def test_alerts_work_in_a_forked_worker(make_capture: Any, webhook: WebhookReceiver) -> None:
    import os

    cap = make_capture(slow_tool_ms=100, alert_webhook_url=webhook.url)
    pid = os.fork()
    if pid == 0:  # the child: like a gunicorn worker forked after chatobs.init()
        code = 1
        try:
            tool_call(Clock(), tool="in_child", duration_ms=300)
            cap.runtime.force_flush()
            stage = alerts.current()
            code = 0 if stage is not None and stage.join(5) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [a["subject"]["tool"] for a in webhook.received] == ["in_child"]
