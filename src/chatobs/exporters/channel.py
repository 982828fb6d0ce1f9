"""Fan-out to exporters, each behind its own bounded queue and worker thread.

A backend that is down, slow or answering garbage only fills its own queue: its spans are dropped and counted
(per exporter and reason) while every other exporter and the request path carry on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._guard import log_limited
from ..pipeline.spans import is_chat_span
from ..pipeline.stats import STATS, PipelineStats

logger = logging.getLogger("chatobs")


@dataclass
class ExporterSpec:
    """One configured destination. ``accept`` (optional) filters spans, e.g. a per-backend sample rate."""

    name: str
    exporter: SpanExporter
    chat_only: bool = False
    accept: Callable[[ReadableSpan], bool] | None = None
    reason: str = ""  # why it was chosen, for `chatobs doctor` and the startup log
    options: dict[str, object] = field(default_factory=dict)


class ExportChannel:
    def __init__(
        self,
        spec: ExporterSpec,
        *,
        queue_size: int = 4096,
        batch_size: int = 256,
        interval_s: float = 1.0,
        max_retry_s: float = 30.0,
        stats: PipelineStats = STATS,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self._max = queue_size
        self._batch = batch_size
        self._interval = interval_s
        self._max_retry_s = max_retry_s
        self.stats = stats
        self._init_state()
        os.register_at_fork(after_in_child=self._init_state)

    def _init_state(self) -> None:
        self._queue: deque[ReadableSpan] = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._busy = False
        self._stopping = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"chatobs-export-{self.name}", daemon=True)
        self._thread.start()

    # --- called from the pipeline thread --------------------------------------------------------------------------
    def offer(self, spans: Sequence[ReadableSpan]) -> None:
        spec = self.spec
        accepted = 0
        for span in spans:
            if spec.chat_only and not is_chat_span(span):
                continue
            if spec.accept is not None and not spec.accept(span):
                continue
            if len(self._queue) >= self._max:
                self.stats.drop(self.name, "queue_full")
                log_limited(f"queue-full-{self.name}", "chatobs: exporter %r is falling behind; dropping spans (queue of %d full)", self.name, self._max)
                continue
            self._queue.append(span)
            accepted += 1
        if accepted and len(self._queue) >= self._batch:
            self._wake.set()

    # --- worker ---------------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            with self._idle:
                self._busy = True
            try:
                while self._queue:
                    batch: list[ReadableSpan] = []
                    try:
                        while len(batch) < self._batch:
                            batch.append(self._queue.popleft())
                    except IndexError:
                        pass
                    self._export(batch)
            finally:
                with self._idle:
                    self._busy = False
                    self._idle.notify_all()
            if self._stopping and not self._queue:
                return

    def _export(self, batch: list[ReadableSpan]) -> None:
        delay = 0.5
        started = time.monotonic()
        while True:
            try:
                result = self.spec.exporter.export(batch)
            except Exception as exc:  # noqa: BLE001 - exporters are third-party code
                log_limited(f"export-error-{self.name}", "chatobs: exporter %r raised %s: %s", self.name, type(exc).__name__, exc)
                result = SpanExportResult.FAILURE
            if result == SpanExportResult.SUCCESS:
                self.stats.exported[self.name] += len(batch)
                return
            self.stats.failed[self.name] += 1
            if self._stopping or time.monotonic() - started + delay > self._max_retry_s:
                self.stats.drop(self.name, "export_failed", len(batch))
                log_limited(f"export-failed-{self.name}", "chatobs: exporter %r failed; dropped %d spans", self.name, len(batch))
                return
            # Wait on the stop event so a shutdown cuts the backoff short (one last try, then drop).
            self._stop.wait(delay)
            delay = min(delay * 2, 10.0)

    # --- flush / shutdown -----------------------------------------------------------------------------------------
    def flush(self, deadline: float) -> bool:
        self._wake.set()
        with self._idle:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.05))
                self._wake.set()
        left = max(0.0, deadline - time.monotonic())
        try:
            # The SDK's base class returns None, meaning "nothing to flush".
            return self.spec.exporter.force_flush(int(left * 1000)) is not False
        except Exception:  # noqa: BLE001
            return False

    def pending(self) -> int:
        return len(self._queue)

    def shutdown(self, deadline: float) -> None:
        delivered = self.flush(deadline)
        self._stopping = True
        self._stop.set()
        self._wake.set()
        left = len(self._queue)
        if left:
            self.stats.drop(self.name, "shutdown", left)
        if not delivered or left:
            logger.warning("chatobs: exporter %r did not deliver everything before shutdown (%d spans left)", self.name, left)
        try:
            self.spec.exporter.shutdown()
        except Exception as exc:  # noqa: BLE001
            log_limited(f"shutdown-{self.name}", "chatobs: exporter %r failed to shut down: %s", self.name, exc)


class Dispatcher:
    """The pipeline's sink: offers every batch to every channel."""

    def __init__(self, channels: Sequence[ExportChannel]) -> None:
        self.channels = list(channels)

    def dispatch(self, spans: Sequence[ReadableSpan]) -> None:
        for ch in self.channels:
            try:
                ch.offer(spans)
            except Exception as exc:  # noqa: BLE001
                log_limited(f"offer-{ch.name}", "chatobs: could not queue spans for %r: %s", ch.name, exc)

    def flush(self, deadline: float) -> bool:
        results: list[bool] = []
        threads = [threading.Thread(target=lambda c=ch: results.append(c.flush(deadline)), daemon=True) for ch in self.channels]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return len(results) == len(self.channels) and all(results)

    def shutdown(self, deadline: float) -> None:
        # In parallel: the timeout is for all exporters together, not each.
        threads = [threading.Thread(target=ch.shutdown, args=(deadline,), daemon=True) for ch in self.channels]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
