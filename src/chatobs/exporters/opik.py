"""Native opik dispatch (placeholder until the dispatch issue lands)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.sdk.trace.export import SpanExporter

from ..config import ConfigError

if TYPE_CHECKING:
    from ..config import Settings


def build(settings: "Settings") -> SpanExporter:
    raise ConfigError("CHATOBS_EXPORTERS=opik: the native opik exporter is not available yet")
