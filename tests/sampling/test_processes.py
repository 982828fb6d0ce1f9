"""Decisions agree across processes; the app's own TracerProvider; nested per-backend rates."""

from __future__ import annotations

import json
import subprocess
import textwrap

from opentelemetry.trace import StatusCode

from chatobs.config import load_settings
from chatobs.core import semconv
from chatobs.export import _rate_filter
from tests.conftest import PYTHON, REPO, subprocess_env
from tests.sampling.util import key_between, position, turn

CONVERSATIONS = [f"shared-{i}" for i in range(800)]

_CHILD = textwrap.dedent(
    """
    import json, sys
    import chatobs
    from tests.sampling.util import turn
    chatobs.init(exporters="none", sample_rate=0.25)
    ids = json.load(sys.stdin)
    print(json.dumps([c for c in ids if turn(c).get_span_context().trace_flags.sampled]))
    chatobs.shutdown()
    """
)


def _child(script: str, stdin: str, **env: str) -> object:
    proc = subprocess.run(
        [PYTHON, "-c", script],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=subprocess_env(**env),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_two_processes_agree(make_capture) -> None:  # type: ignore[no-untyped-def]
    make_capture(sample_rate=0.25)
    here = [c for c in CONVERSATIONS if turn(c).get_span_context().trace_flags.sampled]
    # A different hash seed: nothing may depend on Python's per-process string hashing.
    there = _child(_CHILD, json.dumps(CONVERSATIONS), PYTHONHASHSEED="12345")
    assert there == here
    assert 0.2 < len(here) / len(CONVERSATIONS) < 0.3


_APP_PROVIDER = textwrap.dedent(
    """
    import json
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import StatusCode
    trace.set_tracer_provider(TracerProvider())  # the app's own provider, default sampler (parent-based always-on)
    import chatobs
    from chatobs.core import semconv
    from tests.sampling.util import key_between, turn
    mem = InMemorySpanExporter()
    rt = chatobs.init(exporters="none", sample_rate=0.25, export_interval_ms=20, _span_exporters=[mem])
    assert not rt.owns_provider
    for i in range(300):
        for _ in range(2):
            turn(f"app-{i}")
    turn(key_between(0.9, 1.0, "app-failed"), error=True)
    rt.force_flush(10)
    out = {}
    for s in mem.get_finished_spans():
        c = s.attributes[semconv.GEN_AI_CONVERSATION_ID]
        out.setdefault(c, []).append(s.attributes.get(semconv.SAMPLING_REASON))
    print(json.dumps(out))
    """
)


def test_app_tracer_provider_gets_the_same_decision_in_the_pipeline() -> None:
    got = _child(_APP_PROVIDER, "")
    assert isinstance(got, dict)
    expected = {f"app-{i}" for i in range(300) if position(f"app-{i}") < 0.25}
    failed = key_between(0.9, 1.0, "app-failed")
    assert set(got) - {failed} == expected
    assert all(len(got[c]) == 4 and set(got[c]) == {None} for c in expected)  # two turns: request + LLM span each
    assert got[failed] == ["error", "error"]  # head-dropped, kept by the error rule


def test_per_backend_rates_nest(make_capture) -> None:  # type: ignore[no-untyped-def]
    cap = make_capture(sample_rate=0.5)
    convs = [f"nest-{i}" for i in range(1000)]
    for c in convs:
        turn(c, children=0)
    failed = key_between(0.9, 1.0, "nest-failed")
    turn(failed, error=True)  # head-dropped but kept by a rule: sent everywhere whatever the backend's rate
    spans = cap.spans()
    settings = load_settings(sample_rate=0.5, langfuse_sample_rate=0.1, otlp_sample_rate=0.3, local_sample_rate=1.0)
    langfuse, otlp = _rate_filter(settings, "langfuse"), _rate_filter(settings, "otlp")
    assert _rate_filter(settings, "local") is None  # 1.0: no filter at all

    def sent(accept) -> set[str]:  # type: ignore[no-untyped-def]
        return {s.attributes[semconv.GEN_AI_CONVERSATION_ID] for s in spans if accept(s)}

    everything = sent(lambda s: True)
    to_langfuse, to_otlp = sent(langfuse), sent(otlp)
    assert to_langfuse < to_otlp < everything
    assert failed in to_langfuse
    assert 0.07 < (len(to_langfuse) - 1) / len(convs) < 0.13
    assert 0.26 < (len(to_otlp) - 1) / len(convs) < 0.34
    assert {c for c in to_langfuse if c != failed} == {c for c in convs if position(c) < 0.1}


def test_error_kept_in_an_unsampled_trace_has_every_turn_span(make_capture) -> None:  # type: ignore[no-untyped-def]
    """Head-dropped conversation: only the failed turn is kept (the others did nothing worth keeping)."""
    conv = key_between(0.9, 1.0, "drop")
    cap = make_capture(sample_rate=0.5)
    turn(conv)
    turn(conv, error=True)
    turn(conv)
    spans = cap.spans()
    assert len(spans) == 2 and {s.status.status_code for s in spans} >= {StatusCode.ERROR}


def test_stage_decision_per_trace_when_the_app_samples() -> None:
    """App's provider: spans of one trace without the conversation ID (an outer app span) follow the ones with it."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, TraceFlags

    from chatobs.core.stats import PipelineStats
    from chatobs.processing.sampling import SamplingStage

    res = Resource({"service.name": "t"})

    def span(tid: int, sid: int, conv: str | None, parent: int | None) -> ReadableSpan:
        attrs = {semconv.GEN_AI_CONVERSATION_ID: conv} if conv else {}
        return ReadableSpan(
            name="s",
            context=SpanContext(tid, sid, False, TraceFlags(TraceFlags.SAMPLED)),
            parent=SpanContext(tid, parent, False) if parent else None,
            attributes=attrs,
            resource=res,
        )

    stage = SamplingStage(load_settings(sample_rate=0.5, keep_errors=False), head_in_stage=True, stats=PipelineStats())
    keep, drop = key_between(0.0, 0.5, "app"), key_between(0.5, 1.0, "app")
    # Trace IDs chosen so the trace-ID key alone would decide the other way for the outer span.
    tid_keep = next(t for t in range(1, 10_000) if position(format(t, "032x")) >= 0.5)
    tid_drop = next(t for t in range(1, 10_000) if position(format(t, "032x")) < 0.5)
    out = stage.process(
        [
            span(tid_keep, 3, keep, 2),
            span(tid_keep, 2, None, None),
            span(tid_drop, 3, drop, 2),
            span(tid_drop, 2, None, None),
        ]
    )
    assert [(s.context.trace_id, s.context.span_id) for s in out] == [(tid_keep, 3), (tid_keep, 2)]
