"""Local trace store (placeholder until the local-store issue lands: keeps the last spans in memory)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

if TYPE_CHECKING:
    from ..config import Settings


class MemoryExporter(SpanExporter):
    def __init__(self, maxlen: int = 10000) -> None:
        self.spans: deque[ReadableSpan] = deque(maxlen=maxlen)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def build(settings: "Settings") -> SpanExporter:
    return MemoryExporter()
