"""Spans printed to stdout as JSON, one per line (for development)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

if TYPE_CHECKING:
    from ..config import Settings


def build(settings: Settings) -> SpanExporter:
    return ConsoleSpanExporter(formatter=lambda span: span.to_json(indent=None) + "\n")
