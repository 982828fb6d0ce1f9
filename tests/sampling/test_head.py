"""Head sampling: conversations kept or dropped whole, the documented hash, OTEL_TRACES_SAMPLER, remote parents."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

import chatobs
from chatobs.config import ConfigError, load_settings
from chatobs.core import semconv
from chatobs.processing import sampling
from chatobs.processing.sampling import ChatSampler, head_policy, keeps, sample_value
from tests.sampling.util import key_between, position, remote_parent, turn


def test_documented_hash() -> None:
    for key in ["c1", "conversation-42", "ünïcode 💬", "0" * 32]:
        assert sample_value(key) == position(key)
        assert keeps(key, 1.0) and not keeps(key, 0.0)
    # Nested by construction: kept at a rate means kept at every higher rate.
    k = key_between(0.3, 0.31)
    assert [keeps(k, r) for r in (0.1, 0.3, 0.31, 0.5)] == [False, False, True, True]


def test_ten_thousand_conversations_all_or_nothing(make_capture) -> None:  # type: ignore[no-untyped-def]
    """10,000 conversations of 1-5 turns at rate 0.25. Every turn's root decision is asked of the sampler chatobs
    installed, in a context holding the chat scope (as the middleware starts the request span); the first thousand
    conversations also run as real spans through the whole pipeline, children included."""
    from opentelemetry import context as otel_context

    from chatobs.core.chat_scope import ChatScope, context_with_scope

    cap = make_capture(sample_rate=0.25, max_queue_size=200_000, export_batch_size=2048)
    sampler = cap.runtime.sampler
    rng = random.Random(6)
    turns = {f"conv-{rng.getrandbits(64):016x}": rng.randint(1, 5) for _ in range(10_000)}
    sampled: Counter[str] = Counter()
    for conv, n in turns.items():
        ctx = context_with_scope(ChatScope(conversation_id=conv), otel_context.Context())
        for _ in range(n):
            if sampler.should_sample(ctx, rng.getrandbits(128), "POST /chat").decision.is_sampled():
                sampled[conv] += 1
    assert all(sampled[c] == turns[c] for c in sampled)  # all or nothing
    fraction = len(sampled) / len(turns)
    assert 0.23 <= fraction <= 0.27, fraction
    assert set(sampled) == {c for c in turns if position(c) < 0.25}  # exactly the documented decision

    first = list(turns)[:1000]
    for conv in first:
        for _ in range(turns[conv]):
            turn(conv, children=1)
    spans = cap.spans()
    roots = Counter(
        s.attributes[semconv.GEN_AI_CONVERSATION_ID] for s in spans if s.attributes.get(semconv.CHAT_REQUEST)
    )
    children = Counter(
        s.attributes[semconv.GEN_AI_CONVERSATION_ID] for s in spans if not s.attributes.get(semconv.CHAT_REQUEST)
    )
    assert roots == children == {c: turns[c] for c in first if c in sampled}
    assert 200 < len(roots) < 300


def test_key_is_trace_id_without_conversation_or_with_sample_by_trace(make_capture) -> None:  # type: ignore[no-untyped-def]
    cap = make_capture(sample_rate=0.5)
    roots = [turn(None).get_span_context() for _ in range(400)]
    # No conversation ID when the trace started: recorded, decided by the pipeline when the request ends (keyed on
    # the trace ID here, since the spans never got a conversation ID either).
    assert not any(sc.trace_flags.sampled for sc in roots)
    kept = {s.context.trace_id for s in cap.spans()}
    assert kept == {sc.trace_id for sc in roots if position(format(sc.trace_id, "032x")) < 0.5}
    assert 120 < len(kept) < 280

    make_capture(sample_rate=0.5, sample_by="trace")
    per_turn = [turn("one-conversation").get_span_context() for _ in range(200)]
    assert all(sc.trace_flags.sampled == (position(format(sc.trace_id, "032x")) < 0.5) for sc in per_turn)
    assert 0 < sum(sc.trace_flags.sampled for sc in per_turn) < 200  # turns of one conversation split

    make_capture(sample_rate=0.5, keep_errors=False)  # no tail buffer: decided at the start, on the trace ID
    roots = [turn(None).get_span_context() for _ in range(200)]
    assert all(sc.trace_flags.sampled == (position(format(sc.trace_id, "032x")) < 0.5) for sc in roots)


def test_conversation_learnt_after_the_root_started(make_capture) -> None:  # type: ignore[no-untyped-def]
    """OTel's ASGI instrumentation outermost: its SERVER span starts before chatobs knows the conversation. The
    decision waits for the request's end and is still the conversation's."""
    from opentelemetry import trace as otel_trace

    import chatobs
    from tests.sampling.util import _tracer

    cap = make_capture(sample_rate=0.5)
    tracer = _tracer()
    convs = [f"late-{i}" for i in range(300)]
    for c in convs:
        for _ in range(2):
            server = tracer.start_span("GET /chat", kind=otel_trace.SpanKind.SERVER)  # no scope yet
            with otel_trace.use_span(server, end_on_exit=True), chatobs.scope(conversation_id=c):
                server.set_attributes({semconv.CHAT_REQUEST: True, semconv.GEN_AI_CONVERSATION_ID: c})
                with tracer.start_as_current_span("chat"):
                    pass
    got = Counter(s.attributes[semconv.GEN_AI_CONVERSATION_ID] for s in cap.spans())
    assert set(got) == {c for c in convs if position(c) < 0.5}
    assert set(got.values()) == {4}
    assert cap.runtime.pipeline.stats.events["sampling.kept.deferred_head"] >= len(got) * 2


def _decide(make_capture, conv: str, remote: bool | None = None, **settings) -> bool:  # type: ignore[no-untyped-def]
    make_capture(**settings)
    if remote is None:
        return turn(conv).get_span_context().trace_flags.sampled
    with remote_parent(remote):
        span = turn(conv)
    assert span.get_span_context().trace_id == int("ab" * 16, 16)
    return span.get_span_context().trace_flags.sampled


LOW = key_between(0.0, 0.1, "low")  # kept at any rate >= 0.1
MID = key_between(0.3, 0.45, "mid")  # kept at 0.5, dropped at 0.25
HIGH = key_between(0.9, 1.0, "high")  # dropped below 0.9


@pytest.mark.parametrize(
    ("env", "cases"),
    [
        ({}, [(HIGH, None, True), (HIGH, True, True), (LOW, False, False)]),
        (
            {"CHATOBS_SAMPLE_RATE": "0.25"},
            [(LOW, None, True), (MID, None, False), (HIGH, True, True), (LOW, False, False)],
        ),
        (
            {"CHATOBS_SAMPLE_RATE": "0.25", "CHATOBS_SAMPLE_IGNORE_REMOTE_PARENT": "true"},
            [(HIGH, True, False), (LOW, False, True)],
        ),
        ({"OTEL_TRACES_SAMPLER": "always_on"}, [(HIGH, None, True), (HIGH, False, True)]),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, [(LOW, None, False), (LOW, True, False)]),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
            [(LOW, None, True), (MID, None, False), (LOW, False, True), (HIGH, True, False)],
        ),
        ({"OTEL_TRACES_SAMPLER": "traceidratio"}, [(HIGH, None, True)]),  # the spec's default ratio is 1.0
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_on"}, [(HIGH, None, True), (HIGH, False, False)]),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, [(LOW, None, False), (LOW, True, True)]),
        (
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
            [(LOW, None, True), (MID, None, False), (HIGH, True, True), (LOW, False, False)],
        ),
        # Both rates compare the same position: the smaller one wins.
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}, [(MID, None, True)]),
        (
            {
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.5",
                "CHATOBS_SAMPLE_RATE": "0.25",
            },
            [(MID, None, False), (LOW, None, True)],
        ),
        ({"OTEL_TRACES_SAMPLER": "always_on", "CHATOBS_SAMPLE_RATE": "0.25"}, [(MID, None, False), (LOW, False, True)]),
    ],
)
def test_otel_traces_sampler_and_remote_flag(monkeypatch: pytest.MonkeyPatch, make_capture, env, cases) -> None:  # type: ignore[no-untyped-def]
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for conv, remote, expected in cases:
        assert _decide(make_capture, conv, remote) is expected, (env, conv, remote)


def test_bad_sampler_arg_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "lots")
    with pytest.raises(ConfigError, match="OTEL_TRACES_SAMPLER_ARG"):
        load_settings()


def test_unsampled_traces_are_recorded_only_when_something_needs_them(make_capture) -> None:  # type: ignore[no-untyped-def]
    from chatobs.recording.light_spans import LightSpan

    make_capture(sample_rate=0.0)  # defaults: metrics on, keep errors on, CHATOBS_RECORD_UNSAMPLED=light
    span = turn("c1")
    assert type(span) is LightSpan and not span.get_span_context().trace_flags.sampled
    from tests.sampling.util import _tracer

    with chatobs.scope(conversation_id="c1"):
        assert type(_tracer().start_span("another instrumentation's span")).__name__ == "NonRecordingSpan"

    make_capture(sample_rate=0.0, record_unsampled="full")  # every span recorded (RECORD_ONLY) until the request ends
    span = turn("c1")
    assert span.__class__.__name__ == "_Span" and not span.get_span_context().trace_flags.sampled

    make_capture(sample_rate=0.0, metrics=False, keep_errors=False)
    span = turn("c1")
    assert span.__class__.__name__ == "NonRecordingSpan"  # DROP: nothing recorded, nothing queued

    assert not head_policy(load_settings(metrics=False, keep_errors=False, keep_slow_ms=100)).record_unsampled
    assert head_policy(
        load_settings(metrics=False, keep_errors=False, keep_slow_ms=100, record_unsampled="full")
    ).record_unsampled


def test_children_of_a_record_only_root_are_recorded(make_capture) -> None:  # type: ignore[no-untyped-def]
    cap = make_capture(sample_rate=0.0)
    seen: list[object] = []

    class Spy:
        name = "spy"

        def process(self, spans):  # type: ignore[no-untyped-def]
            seen.extend(spans)
            return spans

    cap.runtime.pipeline.stages.insert(0, Spy())
    turn("c1", children=2)
    cap.spans()
    assert len(seen) == 3 and not any(s.context.trace_flags.sampled for s in seen)


def test_metrics_stage_sees_every_request(monkeypatch: pytest.MonkeyPatch, make_capture) -> None:  # type: ignore[no-untyped-def]
    """The metrics stage runs before sampling: cost reports count dropped conversations too."""
    counted: list[str] = []

    class CountRequests:
        name = "metrics"

        def process(self, spans):  # type: ignore[no-untyped-def]
            counted.extend(
                s.attributes[semconv.GEN_AI_CONVERSATION_ID] for s in spans if s.attributes.get(semconv.CHAT_REQUEST)
            )
            return spans

        def flush(self):  # type: ignore[no-untyped-def]
            return []

        def shutdown(self) -> None:
            pass

    from chatobs.processing.metrics import recorder as metrics

    monkeypatch.setattr(metrics, "build", lambda settings: CountRequests())
    cap = make_capture(sample_rate=0.25)
    convs = [f"m{i}" for i in range(200)]
    for c in convs:
        turn(c)
    exported = {
        s.attributes[semconv.GEN_AI_CONVERSATION_ID] for s in cap.spans() if s.attributes.get(semconv.CHAT_REQUEST)
    }
    assert sorted(counted) == sorted(convs)
    assert exported == {c for c in convs if position(c) < 0.25} and 0 < len(exported) < 200


def test_sampler_description_and_trace_state_kept() -> None:
    from opentelemetry import propagate
    from opentelemetry.trace import get_current_span

    sampler = ChatSampler(head_policy(load_settings(sample_rate=0.5)))
    assert "rate=0.5 by conversation" in sampler.get_description()
    ctx = propagate.extract({"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01", "tracestate": "vendor=x"})
    result = sampler.should_sample(ctx, get_current_span(ctx).get_span_context().trace_id, "span")
    assert result.trace_state is not None and result.trace_state.get("vendor") == "x"


def test_sampling_key_of_finished_spans(make_capture) -> None:  # type: ignore[no-untyped-def]
    cap = make_capture()
    turn("conv-x")
    turn(None)
    by_conv = defaultdict(list)
    for s in cap.spans():
        by_conv[sampling.sampling_key(s)].append(s)
    assert len(by_conv["conv-x"]) == 2
    other = [k for k in by_conv if k != "conv-x"]
    assert len(other) == 1 and len(other[0]) == 32


def test_downstream_service_keys_on_baggage() -> None:
    """An MCP server or other service downstream learns the conversation from W3C baggage, not from a scope."""
    from opentelemetry import propagate

    sampler = ChatSampler(head_policy(load_settings(sample_rate=0.5, sample_ignore_remote_parent=True)))
    for conv, kept in ((key_between(0.0, 0.5, "bag"), True), (key_between(0.5, 1.0, "bag"), False)):
        ctx = propagate.extract(
            {"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-00", "baggage": f"gen_ai.conversation.id={conv}"}
        )
        assert sampler.should_sample(ctx, int("ab" * 16, 16), "tools/call").decision.is_sampled() is kept


def test_benchmark_runs_and_reports() -> None:
    from benchmarks.bench_sampling import main

    results = main(turns=20)
    assert set(results) >= {"kept (rate 1)", "dropped, light spans (rate 0; the default)"}
    assert all(r["request_us"] > 0 for r in results.values())
