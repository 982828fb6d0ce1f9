"""The two span processors chatobs adds to the tracer provider, and the background pipeline behind them.

Request path (cheap): ``ScopeProcessor.on_start`` stamps identity attributes; ``PipelineProcessor.on_end`` appends
the finished span to a bounded queue (``core/work_queue.py``; full: drop and count). Everything else runs on one background thread, in
batches: the stages in order (content -> cost -> metrics/alerts -> sampling -> redaction), then the dispatcher hands the result
to each exporter's own bounded channel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from ..core.chat_scope import identity_attributes, scope_for_span
from ..core.guard import guard, log_limited
from ..core.stats import STATS, PipelineStats
from ..core.work_queue import WorkQueue
from ..recording.span_attrs import set_trusted

logger = logging.getLogger("chatobs")


@runtime_checkable
class Stage(Protocol):
    """One step of the background pipeline. Receives a batch of finished spans and returns the spans to pass on
    (possibly changed copies, fewer, or spans held back earlier). Runs on the pipeline thread only."""

    name: str
    """In logs and in the drop reason ``stage_error:<name>``."""

    pass_on_error: bool
    """When ``process`` raises: ``True`` passes the batch on unchanged (cost, metrics, alerts: losing a span to their
    bug is worse), ``False`` drops and counts it (content, sampling, redaction: an unmasked or unshaped span must never
    reach an exporter)."""

    def process(self, spans: list[ReadableSpan]) -> list[ReadableSpan]: ...

    def flush(self) -> list[ReadableSpan]:
        """Spans held back (e.g. by tail sampling) to release at shutdown."""
        ...

    def shutdown(self) -> None: ...


class Sink(Protocol):
    def dispatch(self, spans: Sequence[ReadableSpan]) -> None: ...
    def flush(self, deadline: float) -> bool: ...
    def shutdown(self, deadline: float) -> None: ...


class ScopeProcessor(SpanProcessor):
    """Puts the request's identity on every span started inside a chat scope, whoever creates the span."""

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        try:
            s = scope_for_span(parent_context)
            if s is None:
                return
            attrs = identity_attributes(s)
            set_trusted(span, attrs)  # identity values are strings and bools: no SDK validation needed
        except Exception as exc:  # noqa: BLE001
            log_limited("scope-processor", "chatobs: could not stamp identity on a span: %s", exc)

    def on_end(self, span: ReadableSpan) -> None:
        pass


class PipelineProcessor(SpanProcessor):
    """Hands finished spans to the background pipeline. ``on_end`` is an append to a bounded deque."""

    def __init__(
        self,
        stages: Sequence[Stage],
        sink: Sink,
        *,
        max_queue_size: int = 8192,
        batch_size: int = 256,
        interval_s: float = 1.0,
        stats: PipelineStats = STATS,
    ) -> None:
        self.stages = list(stages)
        self.sink = sink
        self.stats = stats
        self._queue: WorkQueue[ReadableSpan] = WorkQueue(
            "pipeline",
            self._process,
            maxsize=max_queue_size,
            batch_size=batch_size,
            interval_s=interval_s,
            thread_name="chatobs-pipeline",
            stats=stats,
        )

    # --- request path ---------------------------------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if self._queue.put(span):
            self.stats.received += 1

    def pending(self) -> int:
        return len(self._queue)

    # --- background -----------------------------------------------------------------------------------------------
    def _process(self, spans: list[ReadableSpan]) -> None:
        for stage in self.stages:
            if not spans:
                break
            before = spans
            with guard(f"pipeline stage {stage.name}"):
                spans = stage.process(spans)
                continue
            # A failing stage must not lose the batch, but must not let it skip masking either: see Stage docs.
            spans = before if stage.pass_on_error else []
            if not spans:
                self.stats.drop("pipeline", f"stage_error:{stage.name}", len(before))
        if spans:
            with guard("dispatch"):
                self.sink.dispatch(spans)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        ok = self._queue.wait_idle(deadline)
        return self.sink.flush(deadline) and ok

    def shutdown(self, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        self._queue.wait_idle(deadline)
        self._queue.close()
        held: list[ReadableSpan] = []
        for i, stage in enumerate(self.stages):
            with guard(f"pipeline stage {stage.name} flush"):
                released = list(stage.flush() or [])
                # Released spans still go through the stages after the one that held them (e.g. redaction).
                for later in self.stages[i + 1 :]:
                    released = later.process(released) if released else released
                held.extend(released)
        if held:
            with guard("dispatch"):
                self.sink.dispatch(held)
        self.sink.shutdown(deadline)
        for stage in self.stages:
            with guard(f"pipeline stage {stage.name} shutdown"):
                stage.shutdown()
