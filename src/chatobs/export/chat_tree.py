"""Chat-only export without orphans: LLM backends get the chat spans of a trace, re-parented past the app's own spans.

Langfuse and Opik receive only chat spans (request, GenAI, MCP, decorators). A chat span whose parent is an app span
(a FastAPI endpoint span, a database span) would point at an observation they never receive and show up detached.
So the chat spans of a trace are held until the trace's local root ends (children end before their parents), then
each one's parent is moved up past the skipped spans to the nearest chat ancestor. Bounded: past ``max_spans`` held
spans or ``max_age_s`` the oldest trace is released as it is (counted), never held longer.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext

from ..core.spans import is_chat_span
from ..core.stats import STATS, PipelineStats


def reparent(span: ReadableSpan, parent_id: int | None) -> ReadableSpan:
    parent = None
    if parent_id is not None and span.parent is not None:
        parent = SpanContext(
            span.context.trace_id,
            parent_id,
            is_remote=False,
            trace_flags=span.parent.trace_flags,
            trace_state=span.parent.trace_state,
        )
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=parent,
        resource=span.resource,
        attributes=span.attributes,
        events=tuple(span.events),
        links=tuple(span.links),
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class _Trace:
    __slots__ = ("born", "held", "skipped")

    def __init__(self) -> None:
        self.held: list[ReadableSpan] = []
        self.skipped: dict[int, int | None] = {}  # span id of a non-chat span -> its parent span id
        self.born = time.monotonic()


class ChatTree:
    def __init__(
        self, name: str, *, max_spans: int = 4096, max_age_s: float = 30.0, stats: PipelineStats = STATS
    ) -> None:
        self.name = name
        self._traces: OrderedDict[int, _Trace] = OrderedDict()
        self._count = 0  # held + skipped entries, the memory bound
        self._max = max_spans
        self._max_age = max_age_s
        self._lock = threading.Lock()
        self.stats = stats

    def feed(self, spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
        """The chat spans that are ready to export (their trace's local root has ended), re-parented."""
        out: list[ReadableSpan] = []
        with self._lock:
            for span in spans:
                tid = span.context.trace_id
                tr = self._traces.get(tid)
                if tr is None:
                    tr = self._traces[tid] = _Trace()
                if is_chat_span(span):
                    tr.held.append(span)
                else:
                    tr.skipped[span.context.span_id] = span.parent.span_id if span.parent is not None else None
                self._count += 1
                if span.parent is None or span.parent.is_remote:
                    out.extend(self._release(tid))
            now = time.monotonic()
            while self._traces and (
                self._count > self._max or now - next(iter(self._traces.values())).born > self._max_age
            ):
                tid = next(iter(self._traces))
                released = self._release(tid)
                if released:
                    self.stats.count(f"{self.name}.released_without_root", len(released))
                out.extend(released)
        return out

    def drain(self) -> list[ReadableSpan]:
        """Everything held (flush and shutdown): released as it is."""
        with self._lock:
            out: list[ReadableSpan] = []
            for tid in list(self._traces):
                out.extend(self._release(tid))
            return out

    def held(self) -> int:
        return sum(len(t.held) for t in self._traces.values())

    def _release(self, tid: int) -> list[ReadableSpan]:
        tr = self._traces.pop(tid, None)
        if tr is None:
            return []
        self._count -= len(tr.held) + len(tr.skipped)
        if not tr.skipped:
            return tr.held
        out = []
        for span in tr.held:
            if span.parent is None or span.parent.span_id not in tr.skipped:
                out.append(span)
                continue
            pid: int | None = span.parent.span_id
            seen = 0
            while pid is not None and pid in tr.skipped and seen < 1000:
                pid = tr.skipped[pid]
                seen += 1
            out.append(reparent(span, pid))
        return out
