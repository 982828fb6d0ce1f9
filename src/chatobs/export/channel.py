"""Fan-out to exporters, each behind its own bounded queue and worker thread.

A backend that is down, slow or answering garbage only fills its own queue: its spans are dropped and counted
(per exporter and reason) while every other exporter and the request path carry on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ..core.fork import restart_after_fork
from ..core.guard import log_limited
from ..core.stats import STATS, PipelineStats
from .chat_tree import ChatTree

logger = logging.getLogger("chatobs")

_FIRST_PROBE_S = 1.0  # a degraded channel's first wait before trying the backend again
_MAX_PROBE_S = 30.0


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
    """One exporter's bounded queue and worker thread.

    Retry policy: a failed batch is retried with exponential backoff for up to ``max_retry_s``, then dropped and
    counted. After that the channel is *degraded*: it probes the backend with a single attempt per batch, waiting
    1 s, 2 s, ... up to 30 s between probes, until one succeeds; meanwhile its full queue drops new spans (counted).
    A dead backend so costs neither retry storms nor CPU, and spans flow again on the first successful probe. Memory is bounded by ``queue_size`` spans plus the batch in flight, whatever the backend does.
    """

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
        self._closed = False
        self.degraded = False
        self._probe_delay = _FIRST_PROBE_S
        self.last_error: str | None = None
        self._tree = ChatTree(self.name, max_spans=queue_size) if spec.chat_only else None
        self._init_state()
        # A weak reference: a channel that was shut down must neither be kept alive nor restarted in a forked child.
        restart_after_fork(self)

    def _init_state(self) -> None:
        self._queue: deque[ReadableSpan] = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._busy = False
        self._stopping = False
        self._stop = threading.Event()
        self._inflight = 0  # spans in the export call running now
        self._abandoned = False  # shutdown gave up on that call (and counted its spans)
        self._thread = threading.Thread(target=self._run, name=f"chatobs-export-{self.name}", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        # The child inherits the parent's queue (already being exported by the parent) but not its thread.
        if not self._closed:
            self._init_state()

    # --- called from the pipeline thread --------------------------------------------------------------------------
    def offer(self, spans: Sequence[ReadableSpan]) -> None:
        if self._tree is not None:
            # Chat spans only, held until their trace's root ends so they can skip over the app's own spans.
            spans = self._tree.feed(spans)
        self._enqueue(spans)

    def _enqueue(self, spans: Sequence[ReadableSpan]) -> None:
        spec = self.spec
        accepted = 0
        for span in spans:
            if spec.accept is not None and not spec.accept(span):
                continue
            if len(self._queue) >= self._max or self._closed:
                reason = "queue_full" if not self._closed else "shutdown"
                self.stats.drop(self.name, reason)
                if not self._closed:
                    log_limited(
                        f"queue-full-{self.name}",
                        "chatobs: exporter %r is falling behind (%s); dropping spans, %d dropped so far (queue of %d full)",
                        self.name,
                        self.last_error or "slow backend",
                        self.stats.dropped[(self.name, "queue_full")],
                        self._max,
                    )
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
                    if self.degraded and not self._stopping:
                        # Backend down: probe with one batch now and then instead of spinning through the queue
                        # (encoding batches only to fail costs the app CPU). Meanwhile the full queue drops new spans.
                        self._stop.wait(self._probe_delay)
                        self._probe_delay = min(self._probe_delay * 2, _MAX_PROBE_S)
            finally:
                with self._idle:
                    self._busy = False
                    self._idle.notify_all()
            if self._stopping and not self._queue:
                return

    def _export(self, batch: list[ReadableSpan]) -> None:
        delay = 0.5
        started = time.monotonic()
        # Degraded (the last batch already used up its retry window): one attempt only, until a success.
        window = 0.0 if self.degraded else self._max_retry_s
        while True:
            self._inflight = len(batch)
            try:
                result = self.spec.exporter.export(batch)
            except Exception as exc:  # noqa: BLE001 - exporters are third-party code
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log_limited(f"export-error-{self.name}", "chatobs: exporter %r raised %s", self.name, self.last_error)
                result = SpanExportResult.FAILURE
            finally:
                self._inflight = 0
            if self._abandoned:
                return  # shutdown already counted this batch as dropped; whatever happened, do not count it twice
            if result == SpanExportResult.SUCCESS:
                self.stats.exported[self.name] += len(batch)
                self.degraded = False
                self.last_error = None
                self._probe_delay = _FIRST_PROBE_S
                return
            self.stats.failed[self.name] += 1
            self.last_error = self.last_error or "export returned FAILURE"
            if self._stopping or time.monotonic() - started + delay > window:
                self.stats.drop(self.name, "export_failed", len(batch))
                self.degraded = True
                log_limited(
                    f"export-failed-{self.name}",
                    "chatobs: exporter %r failed (%s); dropped %d spans",
                    self.name,
                    self.last_error,
                    len(batch),
                )
                return
            # Wait on the stop event so a shutdown cuts the backoff short (one last try, then drop).
            self._stop.wait(delay)
            delay = min(delay * 2, 10.0)

    # --- flush / shutdown -----------------------------------------------------------------------------------------
    def flush(self, deadline: float) -> bool:
        if self._tree is not None:
            self._enqueue(self._tree.drain())
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

    def status(self) -> dict[str, object]:
        """What `chatobs doctor` shows for this exporter."""
        dropped = {reason: n for (where, reason), n in self.stats.dropped.items() if where == self.name}
        return {
            "name": self.name,
            "reason": self.spec.reason,
            "pending": len(self._queue) + (self._tree.held() if self._tree is not None else 0),
            "exported": self.stats.exported.get(self.name, 0),
            "failed_calls": self.stats.failed.get(self.name, 0),
            "dropped": dropped,
            "degraded": self.degraded,
            "last_error": self.last_error,
        }

    def shutdown(self, deadline: float) -> None:
        # Keep a little of the budget for the bookkeeping below, so what was lost is counted before shutdown returns.
        reserve = min(0.25, max(0.0, (deadline - time.monotonic()) * 0.1))
        delivered = self.flush(deadline - reserve)
        self._closed = True
        self._stopping = True
        self._stop.set()
        left = 0
        # Whatever is still queued is given up on now; taking it out keeps the worker from exporting it after it
        # has been counted as dropped.
        while True:
            try:
                self._queue.popleft()
                left += 1
            except IndexError:
                break
        self._wake.set()
        if left:
            self.stats.drop(self.name, "shutdown", left)
        inflight = self._inflight
        if inflight:
            # A call still stuck in the exporter (a stalled backend) is given up on: its daemon thread ends when the
            # exporter's own timeout fires, but the spans are reported as not delivered now.
            self._abandoned = True
            self.stats.drop(self.name, "shutdown_in_flight", inflight)
            left += inflight
        if not delivered or left:
            logger.warning(
                "chatobs: exporter %r did not deliver everything before shutdown (%d queued spans dropped%s)",
                self.name,
                left,
                f"; last error: {self.last_error}" if self.last_error else "",
            )
        # An exporter's shutdown may wait on its stuck request; it gets what is left of the budget, in its own thread.
        t = threading.Thread(target=self._shutdown_exporter, name=f"chatobs-shutdown-{self.name}", daemon=True)
        t.start()
        t.join(max(0.0, deadline - time.monotonic()))

    def _shutdown_exporter(self) -> None:
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
        threads = [
            threading.Thread(target=lambda c=ch: results.append(c.flush(deadline)), daemon=True) for ch in self.channels
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return len(results) == len(self.channels) and all(results)

    def status(self) -> list[dict[str, object]]:
        return [ch.status() for ch in self.channels]

    def shutdown(self, deadline: float) -> None:
        # In parallel: the timeout is for all exporters together, not each.
        threads = [threading.Thread(target=ch.shutdown, args=(deadline,), daemon=True) for ch in self.channels]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
