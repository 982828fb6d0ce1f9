"""What users reach from ``chatobs`` itself: flush, stats, the Prometheus routes, the metric-reader hook and the
sampling decision -- each working through the public name, the old module paths still the same objects."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import chatobs
from chatobs.core.stats import STATS
from chatobs.processing import sampling
from chatobs.processing.metrics import recorder as metrics

from .conftest import subprocess_env
from .metrics.helpers import Clock, chat_turn, llm_call, tool_call


def _turn() -> None:
    clock = Clock()
    with chat_turn(clock, tenant_id="acme", user_id="u-1", conversation_id="c-1"):
        llm_call(clock, model="gpt-4o-2024-08-06", input_tokens=120, output_tokens=30, cost=0.0021, duration_ms=400)
        tool_call(clock, tool="search_kb", duration_ms=40)


def test_old_paths_are_the_same_objects() -> None:
    assert chatobs.metrics_asgi_app is metrics.asgi_app
    assert chatobs.metrics_wsgi_app is metrics.wsgi_app
    assert chatobs.register_metric_reader is metrics.register_reader
    assert chatobs.sample_value is sampling.sample_value
    assert chatobs.is_sampled is sampling.keeps
    for name in (
        "flush",
        "stats",
        "metrics_asgi_app",
        "metrics_wsgi_app",
        "register_metric_reader",
        "sample_value",
        "is_sampled",
    ):
        assert name in dir(chatobs) and name in chatobs.__all__


def test_flush_exports_what_was_received(make_capture: Any) -> None:
    # A minute between export rounds: only the flush can have sent the turn's spans within the test.
    cap = make_capture(export_interval_ms=60_000)
    _turn()
    assert cap.exporter.get_finished_spans() == ()
    assert chatobs.flush(timeout_s=10) is True
    names = {s.name for s in cap.exporter.get_finished_spans()}
    assert any(n.startswith("chat") for n in names) and any("search_kb" in n for n in names), names


def test_flush_without_chatobs_running_has_nothing_to_do() -> None:
    assert chatobs.flush() is True


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "5", None, True])
def test_flush_rejects_a_bad_timeout_naming_it(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"timeout_s=.*expected a number of seconds >= 0"):
        chatobs.flush(timeout_s=bad)


def test_stats_is_a_plain_snapshot(make_capture: Any) -> None:
    make_capture()
    before = chatobs.stats()["received"]
    _turn()
    chatobs.flush(timeout_s=10)
    snap = chatobs.stats()
    assert set(snap) == {"received", "dropped", "exported", "failed", "events"}
    assert isinstance(snap["received"], int) and snap["received"] >= before + 3
    snap["events"]["made-up"] = 1  # a copy: changing it changes nothing in chatobs
    assert "made-up" not in STATS.events


async def test_metrics_asgi_app_mounted_in_an_app(make_capture: Any) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    app = Starlette(routes=[Mount("/metrics", app=chatobs.metrics_asgi_app)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        make_capture()
        _turn()
        chatobs.flush(timeout_s=10)
        r = await client.get("/metrics/")
    assert r.status_code == 200 and 'gen_ai_tool_name="search_kb"' in r.text


def test_metrics_wsgi_app(make_capture: Any) -> None:
    from werkzeug.test import Client

    make_capture()
    _turn()
    chatobs.flush(timeout_s=10)
    r = Client(chatobs.metrics_wsgi_app).get("/")
    assert r.status_code == 200 and "chatobs_cost_usd_total{" in r.get_data(as_text=True)


def test_register_metric_reader(make_capture: Any) -> None:
    reader = InMemoryMetricReader()
    remove = chatobs.register_metric_reader(reader)
    try:
        make_capture()
        _turn()
        chatobs.flush(timeout_s=10)
        data = reader.get_metrics_data()
        names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
        assert "gen_ai.client.token.usage" in names, names
    finally:
        remove()


def test_sampling_helpers_agree_with_each_other() -> None:
    keys = [f"conversation-{i}" for i in range(200)]
    for key in keys:
        value = chatobs.sample_value(key)
        assert 0.0 <= value < 1.0
        assert chatobs.is_sampled(key, 0.25) == (value < 0.25)
    kept = sum(chatobs.is_sampled(k, 0.5) for k in keys)
    assert 60 < kept < 140  # a hash, not a constant: some kept, some not


def test_import_stays_light_with_the_new_names() -> None:
    code = (
        "import sys, chatobs\n"
        "chatobs.flush, chatobs.sample_value\n"  # resolving these must not pull in an optional package either
        "heavy = ['openai', 'anthropic', 'mcp', 'langfuse', 'opik', 'presidio_analyzer', 'spacy',"
        " 'prometheus_client']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
