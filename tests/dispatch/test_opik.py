"""Native Opik: one trace per turn, typed spans, UUIDv7 IDs linked from the OTel IDs, sent by the opik SDK's REST
client to the recording server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

import chatobs
from chatobs.config import ConfigError, load_settings
from chatobs.export.opik import uuid7_from
from tests.conftest import subprocess_env
from tests.recording_server import RecordingServer

from .turns import INPUT, OUTPUT, chat_turn, unrelated_span

pytestmark = pytest.mark.timeout(60)


def _start(monkeypatch: pytest.MonkeyPatch, url: str, **kw):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OPIK_URL_OVERRIDE", f"{url}/api")
    monkeypatch.setenv("OPIK_WORKSPACE", "team-a")
    monkeypatch.setenv("OPIK_PROJECT_NAME", "support-bot")
    return chatobs.init(export_interval_ms=20, **kw)


def test_uuid7_layout() -> None:
    u = uuid.UUID(uuid7_from(1_700_000_000_123, (1 << 74) - 1))
    assert u.version == 7 and u.variant == uuid.RFC_4122
    assert u.int >> 80 == 1_700_000_000_123


def test_opik_turn_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    with RecordingServer() as srv:
        rt = _start(monkeypatch, srv.url)
        assert rt is not None and [s.name for s in rt.exporters] == ["opik"]
        chat_turn()
        chat_turn(fail_llm=True, n=1)
        unrelated_span()
        assert srv.wait_for(lambda s: len(s.opik_traces()) >= 2 and len(s.opik_spans()) >= 6)
        chatobs.shutdown()
        req = srv.by_path("/v1/private/spans/batch")[0]
        assert req.headers["comet-workspace"] == "team-a"
        assert req.path == "/api/v1/private/spans/batch"
        traces, spans = srv.opik_traces(), srv.opik_spans()
        assert len(traces) == 2 and len(spans) == 6  # each sent exactly once; the unrelated span not at all
        assert len({t["id"] for t in traces}) == 2 and len({s["id"] for s in spans}) == 6
        for obj in traces + spans:
            assert uuid.UUID(obj["id"]).version == 7
            assert obj["project_name"] == "support-bot"
        t0 = next(t for t in traces if t["metadata"]["message_id"] == "m-0")
        assert t0["name"] == "POST /chat" and t0["thread_id"] == "conv-1"
        assert t0["metadata"]["user_id"] == "user-1" and "user:user-1" in t0["tags"]
        assert t0["input"] == {"message": "What is the weather in Paris?"}
        assert t0["output"] == {"reply": "Sunny, 21 C."}
        assert t0["end_time"] and not t0.get("error_info"), t0
        mine = [s for s in spans if s["trace_id"] == t0["id"]]
        by_name = {s["name"]: s for s in mine}
        root = by_name["POST /chat"]
        assert root.get("parent_span_id") is None and root["type"] == "general"
        llm, tool = by_name["chat gpt-4o-mini"], by_name["tools/call get_weather"]
        assert llm["parent_span_id"] == root["id"] and tool["parent_span_id"] == root["id"]
        assert llm["type"] == "llm" and llm["model"] == "gpt-4o-mini-2024-07-18" and llm["provider"] == "openai"
        assert llm["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
        assert llm["total_estimated_cost"] == pytest.approx(0.0000048)
        assert llm["ttft"] == pytest.approx(250.0)
        assert llm["input"] == {"messages": INPUT} and llm["output"] == {"messages": OUTPUT}
        assert tool["type"] == "tool" and tool["input"] == {"city": "Paris"} and tool["output"] == {"temp_c": 21}
        failed = next(s for s in spans if s["name"] == "chat gpt-4o-mini" and s["trace_id"] != t0["id"])
        assert failed["error_info"]["exception_type"] == "RateLimitError"
        assert failed["error_info"]["message"] == "429 rate limited"


def test_opik_ids_stable_across_batches() -> None:
    """A child exported in an earlier batch than its parent still points at the parent's Opik ID."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from chatobs.export.opik import OpikExporter

    mem = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(mem))
    tracer = tp.get_tracer("t")
    with tracer.start_as_current_span("root"), tracer.start_as_current_span("child"):
        pass
    child, root = mem.get_finished_spans()
    exp = OpikExporter(None, project_name="p", environment=None, timeout_s=1)
    _, [c] = exp.translate([child])
    [t], [r] = exp.translate([root])
    assert c.parent_span_id == r.id and c.trace_id == r.trace_id == t.id


def test_opik_needs_url_or_key() -> None:
    with pytest.raises(ConfigError, match="OPIK_URL_OVERRIDE"):
        chatobs.init(exporters="opik")


_PROBE = """
import json, os, sys
import chatobs
chatobs.init(exporters="opik", opik_url=sys.argv[1], **json.loads(sys.argv[2]))
import opik.config, opik.analytics, opik.error_tracking
cfg = opik.config.OpikConfig()
print(json.dumps({"sentry": cfg.sentry_enable, "analytics": cfg.analytics_enable,
                  "sentry_in_config": opik.error_tracking.enabled_in_config(),
                  "analytics_allowed": opik.analytics.reporting_allowed()}))
"""


def test_opik_telemetry_allowed_leaves_env_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from chatobs.export.opik import TELEMETRY_ENV, quiet_opik_telemetry

    for key in TELEMETRY_ENV:
        monkeypatch.delenv(key, raising=False)
    quiet_opik_telemetry(load_settings(opik_allow_telemetry=True))
    assert not any(key in os.environ for key in TELEMETRY_ENV)
    monkeypatch.setenv("OPIK_SENTRY_ENABLE", "true")  # the user's explicit choice wins
    quiet_opik_telemetry(load_settings())
    assert os.environ["OPIK_SENTRY_ENABLE"] == "true" and os.environ["OPIK_ANALYTICS_ENABLE"] == "false"


def test_opik_telemetry_off_before_import() -> None:
    allow = False
    """In a fresh process (not pytest: the SDK skips Sentry under pytest) chatobs switches the SDK's error reporting
    and analytics off before opik is imported, unless CHATOBS_OPIK_ALLOW_TELEMETRY."""
    env = subprocess_env(HOME=os.environ.get("HOME", "/tmp"), CHATOBS_AGENT="inprocess")  # the exporter is built here
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, "http://127.0.0.1:9/api", json.dumps({"opik_allow_telemetry": allow})],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"sentry": allow, "analytics": allow, "sentry_in_config": allow, "analytics_allowed": allow}


# --- One trace, two processes ---------------------------------------------------------------------------------------
# The app and the MCP tool server are separate processes, each exporting its own spans to Opik; the tool server only
# sees the trace through the traceparent/tracestate of the call. Both must name the same Opik trace and parent span.

_AGENT_MODE: str | None = None  # None: the default (the agent)

_APP = """
import json, sys, time
from opentelemetry.trace import SpanKind
import chatobs
from chatobs.core import semconv as sc
from chatobs.runtime.wiring import get_tracer
chatobs.init(exporters="opik", export_interval_ms=20)
tracer = get_tracer()
with chatobs.scope(conversation_id="conv-x", user_id="u-x"):
    with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER) as root:
        root.set_attribute(sc.CHAT_REQUEST, True)
        root.set_attribute(sc.ROUTE, "/chat")
        time.sleep(0.02)  # the tool call starts later than the turn: a time taken per process would differ
        with tracer.start_as_current_span("tools/call lookup", kind=SpanKind.CLIENT) as tool:
            tool.set_attribute(sc.MCP_METHOD_NAME, "tools/call")
            tool.set_attribute(sc.GEN_AI_TOOL_NAME, "lookup")
            headers = chatobs.inject({})
            print(json.dumps({"headers": headers, "trace_id": format(root.get_span_context().trace_id, "032x"),
                              "client_span_id": format(tool.get_span_context().span_id, "016x")}), flush=True)
chatobs.shutdown()
"""

_TOOL_SERVER = """
import json, sys, time
from opentelemetry import propagate
from opentelemetry.trace import SpanKind
import chatobs
from chatobs.core import semconv as sc
from chatobs.runtime.wiring import get_tracer
chatobs.init(exporters="opik", export_interval_ms=20)
headers = json.loads(sys.argv[1])
time.sleep(0.05)
tracer = get_tracer()
with tracer.start_as_current_span("tools/call lookup", kind=SpanKind.SERVER, context=propagate.extract(headers)) as server:
    server.set_attribute(sc.MCP_METHOD_NAME, "tools/call")
    server.set_attribute(sc.GEN_AI_TOOL_NAME, "lookup")
    with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as llm:  # the tool asks an LLM
        llm.set_attribute(sc.GEN_AI_OPERATION_NAME, sc.OP_CHAT)
        llm.set_attribute(sc.GEN_AI_REQUEST_MODEL, "gpt-4o-mini")
        time.sleep(0.01)
chatobs.shutdown()
"""


def _run(script: str, url: str, *args: str) -> str:
    env = subprocess_env(
        OPIK_URL_OVERRIDE=f"{url}/api",
        OPIK_PROJECT_NAME="support-bot",
        HOME=os.environ.get("HOME", "/tmp"),
        CHATOBS_LOCAL_DB=os.devnull,
        **({"CHATOBS_AGENT": _AGENT_MODE} if _AGENT_MODE else {}),
    )
    out = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("mode", [None, "inprocess"], ids=["agent", "inprocess"])
def test_opik_ids_agree_across_processes(monkeypatch: pytest.MonkeyPatch, mode: str | None) -> None:
    # With the agent (the default) both processes hand their spans to one agent, which must use the time the app
    # stamped on its outgoing call; in process each exports its own spans.
    monkeypatch.setattr(sys.modules[__name__], "_AGENT_MODE", mode, raising=False)
    with RecordingServer() as srv:
        app = json.loads(_run(_APP, srv.url).strip().splitlines()[-1])
        assert "chatobs=t" in app["headers"]["tracestate"]
        assert srv.wait_for(lambda s: len(s.opik_traces()) == 1 and len(s.opik_spans()) == 2)
        _run(_TOOL_SERVER, srv.url, json.dumps(app["headers"]))
        assert srv.wait_for(lambda s: len(s.opik_spans()) == 4)
        (trace_obj,) = srv.opik_traces()
        spans = srv.opik_spans()
    by_otel = {s["metadata"]["otel.span_id"]: s for s in spans}
    client = by_otel[app["client_span_id"]]
    server = next(s for s in spans if s["name"] == "tools/call lookup" and s is not client)
    query = next(s for s in spans if s["name"] == "chat gpt-4o-mini")
    assert server["metadata"]["otel.trace_id"] == app["trace_id"]
    # The tool server's spans point at the trace and the client span exactly as the app sent them.
    assert {s["trace_id"] for s in spans} == {trace_obj["id"]}
    assert server["parent_span_id"] == client["id"]
    assert query["parent_span_id"] == server["id"]
    # ... with a time the Opik server accepts: near the present, not derived from the random ID bits.
    now_ms = __import__("time").time() * 1000
    for obj in [trace_obj, *spans]:
        u = uuid.UUID(obj["id"])
        assert u.version == 7 and abs((u.int >> 80) - now_ms) < 5 * 60_000


def test_stamped_trace_time_honoured_only_near_the_present() -> None:
    from opentelemetry.trace import TraceState

    from chatobs.recording.middleware.tracecontext import trace_time_ms

    now = 1_800_000_000_000
    assert trace_time_ms(0xA1, now, TraceState([("chatobs", f"t{now - 3000:x}")])) == now - 3000
    assert trace_time_ms(0xA1, now + 5) == now - 3000  # fixed for the trace in this process from then on
    far = now - 13 * 3600 * 1000  # Opik would refuse it: this process's own time instead
    assert trace_time_ms(0xA2, now, TraceState([("chatobs", f"t{far:x}")])) == now
    assert trace_time_ms(0xA3, now, TraceState([("chatobs", "tzz")])) == now


def test_trace_time_entry_added_leftmost_within_32_members() -> None:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    from chatobs.recording.middleware.tracecontext import (
        StrictTraceContextPropagator,
        parse_tracestate,
        stamp_trace_time,
    )

    state = parse_tracestate([",".join(f"k{i}=v" for i in range(31)) + ",tenant@v=1"])
    ctx = trace.set_span_in_context(
        NonRecordingSpan(SpanContext(0xB1, 0xC1, is_remote=False, trace_flags=TraceFlags(1), trace_state=state))
    )
    carrier: dict[str, str] = {}
    stamp_trace_time(True)
    try:
        StrictTraceContextPropagator().inject(carrier, ctx)
    finally:
        stamp_trace_time(False)
    members = carrier["tracestate"].split(",")
    assert (
        len(members) == 32
        and members[0].startswith("chatobs=t")
        and members[1] == "k0=v"
        and "tenant@v=1" not in members
    )
    plain: dict[str, str] = {}
    StrictTraceContextPropagator().inject(plain, ctx)  # off: the tracestate passes through unchanged
    assert plain["tracestate"] == state.to_header()
