"""Fail closed: when masking errs, times out or its queue is full, content is replaced by a marker and counted --
never exported unmasked -- and the rest of the span still goes out."""

from __future__ import annotations

import json
import threading
import time

import pytest

from chatobs.core import semconv
from chatobs.core.stats import STATS
from chatobs.processing.masking.masker import MaskingFailed
from chatobs.processing.masking.worker import ProcessBackend, shared_backend
from chatobs.processing.pii import engine as pii
from chatobs.processing.pii.engine import PiiConfig

from .helpers import API_KEY, chat_turn, exported, leaks, span_text

pytestmark = pytest.mark.timeout(180)


def _failures(reason: str) -> int:
    return STATS.events.get(f"redaction_failed:{reason}", 0)


def _assert_closed(spans, reason: str) -> None:  # type: ignore[no-untyped-def]
    marker = f"<chatobs: content removed, masking {reason}>"
    assert len(spans) == 4
    for span in spans:
        assert leaks(span_text(span)) == [], span.name
    by = {s.name: s for s in spans}
    llm = by["chat gpt-4o"]
    assert llm.attributes[semconv.GEN_AI_INPUT_MESSAGES] == marker
    assert llm.attributes[semconv.REDACTION_FAILED] == reason
    assert llm.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1234  # numbers survive
    task = by["task charge"]
    exc = next(e for e in task.events if e.name == "exception")
    assert exc.attributes[semconv.EXCEPTION_MESSAGE] == marker
    assert exc.attributes[semconv.EXCEPTION_TYPE] == "ValueError"
    assert task.status.description == marker
    root = by["POST /chat"]
    assert "http.request.header.authorization" not in root.attributes
    assert API_KEY not in root.attributes["app.api_key"]


def test_masking_error_fails_closed(make_capture, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated fault (the one mocked part): Presidio's analyzer raising. Everything else is the real pipeline.
    def broken(self, text, context=None):  # type: ignore[no-untyped-def]
        raise RuntimeError("analyzer exploded")

    monkeypatch.setattr(pii.PiiEngine, "analyze", broken)
    before = _failures("error")
    cap = make_capture(masking_worker="thread", redact_attributes="app.ticket.body")
    chat_turn()
    _assert_closed(exported(cap), "error")
    assert _failures("error") - before == 4


def test_masking_timeout_fails_closed(make_capture) -> None:
    # A timeout far below what masking a batch takes: the real engine runs out of time part-way.
    before = _failures("timeout")
    cap = make_capture(masking_worker="thread", masking_timeout_s=1e-9, redact_attributes="app.ticket.body")
    chat_turn()
    _assert_closed(exported(cap), "timeout")
    assert _failures("timeout") - before == 4


def test_worker_queue_full_fails_fast() -> None:
    """A real worker process with a queue of one request: while a big request is outstanding (its caller timed
    out), the next one is refused at once with queue_full instead of waiting."""
    backend = ProcessBackend(PiiConfig(), max_inflight=1)
    try:
        assert backend.wait_ready(120)
        busy = _keep_busy(backend)
        t0 = time.monotonic()
        with pytest.raises(MaskingFailed) as err:
            backend.mask_many([("ann@example.com", None)], timeout_s=30)
        assert err.value.reason == "queue_full"
        assert time.monotonic() - t0 < 1.0
        busy.join(120)
    finally:
        backend.stop()


def _keep_busy(backend: ProcessBackend) -> threading.Thread:
    """Another caller with a big request outstanding (seconds of Presidio work) -- fills a queue of one."""
    big = [(f"call me at 415-555-{i:04d} or mail u{i}@example.com", None) for i in range(3000)]
    started = threading.Event()

    def run() -> None:
        started.set()
        try:
            backend.mask_many(big, timeout_s=60)
        except MaskingFailed:
            pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    started.wait(5)
    deadline = time.monotonic() + 5
    while not backend._pending and time.monotonic() < deadline:
        time.sleep(0.001)
    assert backend._pending
    return t


def test_worker_queue_full_through_the_pipeline(make_capture) -> None:
    cap = make_capture(masking_worker="process", redact_attributes="app.ticket.body")
    worker = shared_backend(cap.runtime.stages[-1].masker.cfg)
    assert worker.wait_ready(120)
    old = worker.max_inflight
    worker.max_inflight = 1
    try:
        busy = _keep_busy(worker)
        before = _failures("queue_full")
        chat_turn()
        _assert_closed(exported(cap), "queue_full")
        assert _failures("queue_full") - before == 4
        busy.join(120)
    finally:
        worker.max_inflight = old


def test_worker_round_trip_and_restart_after_death() -> None:
    backend = ProcessBackend(PiiConfig())
    try:
        assert backend.wait_ready(120)
        out = backend.mask_many(
            [("mail ann@example.com", None), ("no pii here", None), ('{"phone": "415-555-0132"}', "phone")], 60
        )
        assert out == ["mail <EMAIL_ADDRESS>", "no pii here", '{"phone": "<PHONE_NUMBER>"}']
        backend._proc.kill()
        backend._proc.wait(10)
        backend._last_start -= 60  # as if it had been running for a minute
        # A dead worker is restarted on the next request...
        assert backend.mask_many([("ann@example.com", None)], 120) == ["<EMAIL_ADDRESS>"]
        assert backend.restarts == 1
        # ...but at most once every few seconds: a crash loop fails closed instead of spawning processes.
        backend._proc.kill()
        backend._proc.wait(10)
        # As if it had just been restarted (on a loaded machine the restart above can itself outlast the interval).
        backend._last_start = time.monotonic()
        with pytest.raises(MaskingFailed) as err:
            backend.mask_many([("ann@example.com", None)], 5)
        assert err.value.reason == "worker_unavailable"
        assert backend.restarts == 1
    finally:
        backend.stop()


def test_unmaskable_value_in_one_span_does_not_drop_the_batch(make_capture, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated fault: only texts mentioning "poison" make the analyzer raise.
    real = pii.PiiEngine.analyze

    def picky(self, text, context=None):  # type: ignore[no-untyped-def]
        if "poison" in text:
            raise RuntimeError("bad text")
        return real(self, text, context)

    monkeypatch.setattr(pii.PiiEngine, "analyze", picky)
    cap = make_capture(masking_worker="thread")
    from chatobs.runtime.wiring import get_tracer

    with get_tracer().start_as_current_span("a") as a:
        a.set_attribute(semconv.INPUT, json.dumps({"q": "poison 415-555-0132"}))
    with get_tracer().start_as_current_span("b") as b:
        b.set_attribute(semconv.INPUT, "mail ann@example.com")
    by = {s.name: s for s in exported(cap)}
    assert by["a"].attributes[semconv.INPUT] == "<chatobs: content removed, masking error>"
    assert by["b"].attributes[semconv.INPUT] == "mail <EMAIL_ADDRESS>"
