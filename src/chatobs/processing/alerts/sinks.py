"""Where alerts go: a WARNING log record, a webhook and Python callbacks, behind one cooldown.

The log record is written on the pipeline thread (cheap). The webhook and the callbacks each have their own bounded
queue and worker thread, so a slow or failing receiver (or a slow callback) holds up neither the app nor the pipeline:
when a queue is full the alert is dropped from that sink and counted in ``STATS``.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ...core.fork import restart_after_fork
from ...core.guard import log_limited
from ...core.stats import STATS

alert_logger = logging.getLogger("chatobs.alerts")

__all__ = ["Alert", "AlertDispatcher", "CallbackRunner", "WebhookSender"]


@dataclass(frozen=True)
class Alert:
    """One firing of a rule, with the figures that made it fire and the turn (trace, span) that tipped it."""

    rule: str
    type: str
    message: str
    subject: dict[str, str]
    figures: dict[str, float]
    trace_id: str
    span_id: str
    time: float = field(default_factory=time.time)
    severity: str = "warning"
    viewer_url: str | None = None
    service: str | None = None
    conversation_id: str | None = None
    suppressed: int = 0  # firings of the same rule and subject held back by the cooldown since the last one sent

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.rule, tuple(sorted(self.subject.items()))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["time_iso"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.time))
        return data


class _Worker:
    """A daemon thread working through a bounded queue; full queue means drop and count, never block the caller."""

    _STOP = object()

    def __init__(self, name: str, handle: Callable[[Any], None], maxsize: int = 256) -> None:
        self.name = name
        self._handle = handle
        self._maxsize = maxsize
        self._closed = False
        self._start()
        # A forked worker (gunicorn --preload) inherits the queue but not the thread: start afresh there. A weak
        # reference, so workers of earlier init() cycles are neither kept alive nor restarted.
        restart_after_fork(self, "_restart_if_open")

    def _restart_if_open(self) -> None:
        if not self._closed:
            self._start()

    def _start(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self._maxsize)
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"chatobs-{self.name}", daemon=True)
        self._thread.start()

    def put(self, item: Any) -> bool:
        if self.stopping.is_set():
            return False
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            STATS.drop(self.name, "queue_full")
            log_limited(f"{self.name}-full", "chatobs: %s is falling behind; dropping alerts", self.name)
            return False

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is self._STOP:
                    return
                self._handle(item)
            except Exception as exc:  # noqa: BLE001 - a sink failure is logged, never raised
                log_limited(f"{self.name}-error", "chatobs: %s failed: %s: %s", self.name, type(exc).__name__, exc)
            finally:
                self._queue.task_done()

    def join(self, timeout_s: float) -> bool:
        """Wait until the queue is worked off (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def stop(self, timeout_s: float) -> None:
        self._closed = True
        # Stopping first: what is queued still gets one attempt each, but nobody waits out retry backoffs at exit.
        self.stopping.set()
        self.join(timeout_s)
        try:
            self._queue.put_nowait(self._STOP)
        except queue.Full:
            pass  # daemon thread: it ends with the process
        self._thread.join(max(0.0, min(timeout_s, 1.0)))


class WebhookSender:
    """JSON POST of each alert to one URL: retried with backoff, at most ``max_per_minute`` POSTs per minute."""

    RETRIES = 3
    BACKOFF_S = (0.5, 1.0, 2.0)

    def __init__(self, url: str, *, timeout_s: float = 5.0, max_per_minute: int = 20, queue_size: int = 256) -> None:
        self._url = url
        self._timeout = timeout_s
        self._capacity = float(max_per_minute)
        self._tokens = float(max_per_minute)
        self._refill_per_s = max_per_minute / 60.0
        self._last = time.monotonic()
        self.sent = 0
        self.failed = 0
        self.rate_limited = 0
        self._worker = _Worker("alert_webhook", self._send, maxsize=queue_size)

    def submit(self, alert: Alert) -> None:
        self._worker.put(alert)

    def _take_token(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._refill_per_s)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def _send(self, alert: Alert) -> None:
        if not self._take_token():
            self.rate_limited += 1
            STATS.drop("alert_webhook", "rate_limited")
            log_limited("alert-webhook-rate", "chatobs: alert webhook rate limit reached; alerts are still logged")
            return
        body = json.dumps(alert.to_dict(), default=str).encode()
        for attempt in range(self.RETRIES + 1):
            outcome = self._post(body)
            if outcome == "ok":
                self.sent += 1
                return
            if outcome == "give_up" or attempt == self.RETRIES:
                break
            if self._worker.stopping.wait(self.BACKOFF_S[min(attempt, len(self.BACKOFF_S) - 1)]):
                break
        self.failed += 1
        STATS.drop("alert_webhook", "send_failed")

    def _post(self, body: bytes) -> str:
        """``ok``, ``retry`` (network error, 5xx, 429) or ``give_up`` (another 4xx: retrying will not help)."""
        request = urllib.request.Request(  # noqa: S310 - http(s) only: CHATOBS_ALERT_WEBHOOK_URL is checked at load
            self._url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "chatobs-alerts"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310 - URL set by the operator
                return "ok" if 200 <= response.status < 300 else "retry"
        except urllib.error.HTTPError as exc:
            log_limited("alert-webhook-http", "chatobs: alert webhook answered HTTP %s", exc.code)
            return "give_up" if 400 <= exc.code < 500 and exc.code != 429 else "retry"
        except (OSError, ValueError) as exc:
            # The URL is a secret setting (it may carry a token): name the failure, never the URL.
            log_limited("alert-webhook-error", "chatobs: alert webhook failed: %s", type(exc).__name__)
            return "retry"

    def join(self, timeout_s: float) -> bool:
        return self._worker.join(timeout_s)

    def stop(self, timeout_s: float) -> None:
        self._worker.stop(timeout_s)


class CallbackRunner:
    """Calls the registered Python callbacks with each alert, on its own thread (a slow callback delays nobody)."""

    def __init__(self, callbacks: Callable[[], list[Callable[[Alert], Any]]], queue_size: int = 1024) -> None:
        self._callbacks = callbacks
        self._worker = _Worker("alert_callbacks", self._run, maxsize=queue_size)

    def submit(self, alert: Alert) -> None:
        if self._callbacks():
            self._worker.put(alert)

    def _run(self, alert: Alert) -> None:
        for fn in self._callbacks():
            try:
                fn(alert)
            except Exception as exc:  # noqa: BLE001
                log_limited(
                    "alert-callback",
                    "chatobs: alert callback %r failed: %s: %s",
                    getattr(fn, "__name__", fn),
                    type(exc).__name__,
                    exc,
                )

    def join(self, timeout_s: float) -> bool:
        return self._worker.join(timeout_s)

    def stop(self, timeout_s: float) -> None:
        self._worker.stop(timeout_s)


class AlertDispatcher:
    """Applies the cooldown (same rule and subject at most once per ``cooldown_s``), then logs and hands on."""

    MAX_KEYS = 10_000

    def __init__(
        self,
        *,
        cooldown_s: float,
        webhook: WebhookSender | None = None,
        callbacks: CallbackRunner | None = None,
        count: Callable[[Alert], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cooldown_s = cooldown_s
        self.webhook = webhook
        self.callbacks = callbacks
        self._count = count
        self._clock = clock
        self._last: OrderedDict[Any, list[float | int]] = OrderedDict()  # key -> [last sent, suppressed since]
        self.emitted = 0
        self.suppressed = 0

    def emit(self, alert: Alert) -> bool:
        """Send ``alert`` unless its cooldown holds it back; returns whether it was sent."""
        if self._count is not None:
            self._count(alert)
        now = self._clock()
        key = alert.key
        entry = self._last.get(key)
        if entry is not None and now - entry[0] < self.cooldown_s:
            entry[1] += 1
            self.suppressed += 1
            return False
        held = int(entry[1]) if entry is not None else 0
        self._last[key] = [now, 0]
        self._last.move_to_end(key)
        while len(self._last) > self.MAX_KEYS:
            self._last.popitem(last=False)
        if held:
            alert = replace(alert, suppressed=held)
        self.emitted += 1
        self._log(alert)
        if self.callbacks is not None:
            self.callbacks.submit(alert)
        if self.webhook is not None:
            self.webhook.submit(alert)
        return True

    @staticmethod
    def _log(alert: Alert) -> None:
        link = f" {alert.viewer_url}" if alert.viewer_url else ""
        held = f" ({alert.suppressed} more held back by the cooldown)" if alert.suppressed else ""
        alert_logger.warning(
            "chatobs alert [%s] %s trace_id=%s span_id=%s%s%s",
            alert.rule,
            alert.message,
            alert.trace_id,
            alert.span_id,
            link,
            held,
            extra={
                "chatobs_alert": alert.to_dict(),
                "alert_rule": alert.rule,
                "alert_type": alert.type,
                "trace_id": alert.trace_id,
                "span_id": alert.span_id,
            },
        )

    def join(self, timeout_s: float) -> bool:
        """Wait until the webhook and callbacks have worked off what they were given (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        ok = True
        for sink in (self.callbacks, self.webhook):
            if sink is not None:
                ok = sink.join(max(0.0, deadline - time.monotonic())) and ok
        return ok

    def shutdown(self, timeout_s: float = 2.0) -> None:
        deadline = time.monotonic() + timeout_s
        for sink in (self.callbacks, self.webhook):
            if sink is not None:
                sink.stop(max(0.0, deadline - time.monotonic()))
