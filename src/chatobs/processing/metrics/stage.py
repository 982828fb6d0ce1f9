"""The metrics stage of the pipeline, the running recorder, and readers added from outside (tests, embedding apps)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import ReadableSpan

from ...core.guard import log_limited

if TYPE_CHECKING:
    from ...config import Settings
from .recorder import Recorder

# --- readers contributed from outside (tests, embedding apps) --------------------------------------------------------
_extra_readers: list[MetricReader] = []
_current: Recorder | None = None
_current_lock = threading.Lock()


def register_reader(reader: MetricReader) -> Callable[[], None]:
    """Add ``reader`` (e.g. the SDK's ``InMemoryMetricReader``) to chatobs's MeterProvider from the next ``init()`` on.

    Returns a function that removes it again. A reader belongs to one provider: pass a fresh one per ``init()``.
    """
    _extra_readers.append(reader)

    def remove() -> None:
        if reader in _extra_readers:
            _extra_readers.remove(reader)

    return remove


def current() -> Recorder | None:
    """The running metrics recorder, or ``None`` when chatobs (or its metrics) is not running."""
    return _current


# --- the stage ----------------------------------------------------------------------------------------------------
class MetricsStage:
    """Records every span; passes the batch on unchanged. A metrics failure never costs a span."""

    name = "metrics"
    pass_on_error = True

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def process(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        record = self.recorder.record
        for span in spans:
            try:
                record(span)
            except Exception as exc:  # noqa: BLE001 - one odd span must not stop the rest of the batch
                log_limited(
                    "metrics-record",
                    "chatobs: could not record metrics for span %r: %s: %s",
                    span.name,
                    type(exc).__name__,
                    exc,
                )
        return spans

    def flush(self) -> list[ReadableSpan]:
        return []

    def shutdown(self) -> None:
        global _current
        with _current_lock:
            if _current is self.recorder:
                _current = None
        self.recorder.shutdown()


def build(settings: Settings) -> MetricsStage | None:
    global _current
    if not settings.metrics:
        return None
    recorder = Recorder(settings, readers=list(_extra_readers))
    with _current_lock:
        previous, _current = _current, recorder
    if previous is not None:
        # A leftover from an init() whose shutdown never ran (e.g. a failed init): free its port and threads.
        previous.shutdown()
    return MetricsStage(recorder)
