"""The app side of the agent: finished spans go, in batches of compact records, to the agent's Unix socket.

Request path: ``on_end`` appends the span to a bounded deque (full: drop and count) -- nothing else. One sender thread
turns spans into records (``core.wire``), writes them with timeouts, reconnects with backoff when the agent is gone
(starting a new one through ``start`` when given) and counts what a dead agent lost: the spans it had not yet
acknowledged. The spans still queued wait for the next agent.
"""

from __future__ import annotations

import itertools
import logging
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from .. import __version__
from ..core import wire
from ..core.fork import restart_after_fork
from ..core.guard import log_limited
from ..core.stats import STATS, PipelineStats

__all__ = ["HandoffProcessor"]

logger = logging.getLogger("chatobs")

_IO_TIMEOUT_S = 2.0
_FIRST_BACKOFF_S = 0.1
_MAX_BACKOFF_S = 5.0
_DROPS_EVERY_S = 5.0


class HandoffProcessor(SpanProcessor):
    """Queue finished spans for the agent on ``path``; ``refused`` (a message) means: drop and count everything."""

    def __init__(
        self,
        path: Path | None,
        resource: Resource,
        *,
        start: Callable[[], bool] | None = None,
        queue_size: int = 8192,
        batch_size: int = 256,
        interval_s: float = 0.2,
        refused: str | None = None,
        stats: PipelineStats = STATS,
    ) -> None:
        self.path = path
        self.resource = resource
        self._start_agent = start
        self._max = queue_size
        self._batch = batch_size
        self._interval = interval_s
        self.refused = refused
        self.stats = stats
        self._closed = False
        self._init_state()
        restart_after_fork(self)

    def _init_state(self) -> None:
        self._queue: deque[ReadableSpan] = deque()
        self._wake = threading.Event()
        self._sock: socket.socket | None = None
        self._reader = wire.FrameReader()
        self._seq = itertools.count(1)
        self._unacked: dict[int, int] = {}  # batch seq -> spans, sent but not yet acknowledged
        self._flush_ids = itertools.count(1)
        self._flush_lock = threading.Lock()
        self._flushes: dict[int, tuple[threading.Event, list[bool], float]] = {}
        self._flush_acks: dict[int, bool] = {}
        self._next_connect = 0.0
        self._backoff = _FIRST_BACKOFF_S
        self._reported: dict[str, int] = {}
        self._last_drops = time.monotonic()
        self.connected_since: float | None = None
        self.connects = 0
        self.last_error: str | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        if self.refused is None and self.path is not None:
            self._thread = threading.Thread(target=self._run, name="chatobs-handoff", daemon=True)
            self._thread.start()

    def _after_fork(self) -> None:
        # gunicorn --preload: the child inherits the parent's connection and queue but not its thread; it must not
        # write into the parent's socket nor resend the parent's spans.
        if self._closed:
            return
        sock = self._sock
        if sock is not None:
            try:
                sock.detach()  # forget the fd without shutting down the parent's connection
            except OSError:
                pass
        self._init_state()

    # --- request path ---------------------------------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        queue = self._queue
        if len(queue) >= self._max or self._closed or self.refused is not None:
            self.stats.drop(
                "handoff",
                "agent_dir_refused" if self.refused is not None else "shutdown" if self._closed else "queue_full",
            )
            return
        queue.append(span)
        self.stats.received += 1
        if len(queue) >= self._batch:
            self._wake.set()

    def pending(self) -> int:
        return len(self._queue)

    def prometheus_text(self, timeout_s: float = 2.0) -> tuple[int, bytes, str] | None:
        """The agent's Prometheus exposition (every process's metrics), for the route an app mounts; None if no agent
        answers. A short connection of its own, so a scrape never waits behind a batch of spans."""
        from ..core.client import AgentUnavailable, request

        if self.path is None:
            return None
        try:
            kind, reply = request(self.path, wire.METRICS, timeout_s=timeout_s)
        except AgentUnavailable:
            return None
        return tuple(reply) if kind == wire.METRICS_REPLY else None

    def status(self) -> dict[str, Any]:
        """This process's side of the hand-off, for ``chatobs doctor``."""
        return {
            "socket": str(self.path) if self.path else None,
            "refused": self.refused,
            "queued": len(self._queue),
            "unacked": self.unacked(),
            "connected_since": self.connected_since,
            "connects": self.connects,
            "last_error": self.last_error,
        }

    def unacked(self) -> int:
        return sum(list(self._unacked.values()))  # read from other threads (status) while the sender changes it

    # --- flush and shutdown (app threads wait; the sender does the I/O) ----------------------------------------------
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if self.refused is not None or self._thread is None:
            return False
        deadline = time.monotonic() + timeout_millis / 1000
        done = threading.Event()
        result: list[bool] = []
        with self._flush_lock:
            self._flushes[next(self._flush_ids)] = (done, result, deadline)
        self._wake.set()
        done.wait(max(0.0, deadline - time.monotonic()))
        return bool(result and result[0])

    def shutdown(self, timeout_s: float = 5.0) -> None:
        if self._closed:
            return
        ok = self.force_flush(int(timeout_s * 1000))
        self._closed = True
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(1.0)
        if not ok:
            left = len(self._queue)
            logger.warning(
                "chatobs: shutdown did not deliver everything within %.1fs (%s; %d spans still queued here were dropped)",
                timeout_s,
                self.last_error or "the agent's exporters did not flush in time; its log says which",
                left,
            )
            if left:
                self.stats.drop("handoff", "shutdown", left)
                self._queue.clear()

    # --- sender thread ----------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self._cycle()
            except Exception as exc:  # noqa: BLE001 - the sender must outlive anything
                log_limited("handoff-cycle", "chatobs: hand-off to the agent failed: %s", exc)
                self._disconnect(str(exc))
        self._disconnect(None)

    def _cycle(self) -> None:
        if self._sock is None and not self._connect():
            self._fail_due_flushes()
            return
        self._send_queued()
        self._poll(0.0)
        if self._flushes:
            self._do_flushes()
        if time.monotonic() - self._last_drops > _DROPS_EVERY_S:
            self._send_drops()

    def _connect(self) -> bool:
        now = time.monotonic()
        if now < self._next_connect and not self._flushes:
            return False
        assert self.path is not None
        sock = self._try_connect()
        if sock is None and self._start_agent is not None:
            try:
                started = self._start_agent()
            except Exception as exc:  # noqa: BLE001
                log_limited("agent-start", "chatobs: could not start the agent: %s", exc)
                started = False
            sock = self._try_connect() if started else None
        if sock is None:
            self._next_connect = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, _MAX_BACKOFF_S)
            return False
        self._sock = sock
        self._reader = wire.FrameReader()
        self._backoff = _FIRST_BACKOFF_S
        self.connected_since = time.time()
        self.connects += 1
        hello = {
            "protocol": wire.PROTOCOL,
            "pid": os.getpid(),
            "version": __version__,
            "resource": wire.resource_attributes(self.resource),
        }
        self._write(wire.encode_frame(wire.HELLO, hello))
        return self._sock is not None

    def _try_connect(self) -> socket.socket | None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(_IO_TIMEOUT_S)
        try:
            s.connect(str(self.path))
            if wire.peer_uid(s) != os.getuid():
                # Spans carry prompts: never to another user's process, even one squatting in our directory.
                log_limited(
                    "agent-peer", "chatobs: the process on %s is another user's; not sending spans to it", self.path
                )
                s.close()
                return None
            return s
        except OSError as exc:
            self.last_error = f"connect: {exc.strerror or exc}"
            s.close()
            return None

    def _write(self, data: bytes) -> bool:
        sock = self._sock
        if sock is None:
            return False
        try:
            sock.sendall(data)
            return True
        except OSError as exc:
            self._disconnect(f"send: {exc.strerror or exc}")
            return False

    def _send_queued(self) -> None:
        queue = self._queue
        while queue and self._sock is not None:
            batch: list[ReadableSpan] = []
            try:
                while len(batch) < self._batch:
                    batch.append(queue.popleft())
            except IndexError:
                pass
            seq = next(self._seq)
            records = wire.iter_records(batch, self.resource)
            times = _trace_times(batch)
            frame: bytes | None
            try:
                frame = wire.encode_frame(wire.SPANS, (seq, records, times))
            except ValueError:
                frame = self._encode_each(seq, records)
                if frame is None:
                    continue
            self._unacked[seq] = len(batch)
            if not self._write(frame):
                return
            self._poll(0.0)

    def _encode_each(self, seq: int, records: list[tuple[Any, ...]]) -> bytes | None:
        good = []
        for r in records:
            try:
                wire.encode_frame(wire.SPANS, r)
                good.append(r)
            except ValueError:
                # A value marshal cannot encode (an object a custom processor put on a span): only that span is lost.
                self.stats.drop("handoff", "unencodable")
        return wire.encode_frame(wire.SPANS, (seq, good, {})) if good else None

    def _poll(self, timeout_s: float) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            ready, _, _ = select.select([sock], [], [], timeout_s)
            if not ready:
                return
            data = sock.recv(65536)
        except OSError as exc:
            self._disconnect(f"recv: {exc.strerror or exc}")
            return
        if not data:
            self._disconnect("the agent closed the connection")
            return
        for kind, payload in self._reader.feed(data):
            if kind == wire.ACK:
                for seq in [s for s in self._unacked if s <= payload]:
                    del self._unacked[seq]
            elif kind == wire.FLUSH_ACK:
                fid, ok = payload
                self._flush_acks[fid] = bool(ok)

    def _do_flushes(self) -> None:
        with self._flush_lock:
            todo = list(self._flushes.items())
        for fid, (done, result, deadline) in todo:
            self._send_queued()
            self._send_drops()
            left = deadline - time.monotonic()
            ok = False
            if self._sock is not None and left > 0:
                # The agent answers once the spans went through its stages and its exporters flushed.
                self._write(wire.encode_frame(wire.FLUSH, (fid, int(left * 1000 * 0.9))))
                while self._sock is not None and fid not in self._flush_acks and time.monotonic() < deadline:
                    self._poll(min(0.05, max(0.0, deadline - time.monotonic())))
                ok = self._flush_acks.pop(fid, False) and not self._queue
            with self._flush_lock:
                self._flushes.pop(fid, None)
            result.append(ok)
            done.set()

    def _fail_due_flushes(self) -> None:
        now = time.monotonic()
        with self._flush_lock:
            due = [(fid, v) for fid, v in self._flushes.items() if v[2] <= now]
            for fid, _ in due:
                del self._flushes[fid]
        for _, (done, result, _d) in due:
            result.append(False)
            done.set()
        if self._flushes:
            self._wake.set()
            time.sleep(0.02)  # retry connecting soon, within the flush deadline

    def _send_drops(self) -> None:
        self._last_drops = time.monotonic()
        snap = {f"{w}/{r}": n for (w, r), n in list(self.stats.dropped.items()) if w in ("handoff", "agent")}
        delta = {k: n - self._reported.get(k, 0) for k, n in snap.items() if n != self._reported.get(k, 0)}
        if delta and self._write(wire.encode_frame(wire.DROPS, delta)):
            self._reported.update(snap)

    def _disconnect(self, error: str | None) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        lost = sum(self._unacked.values())
        self._unacked.clear()
        if lost:
            # Sent but never acknowledged: the agent died with them (kill -9) or the connection broke mid-batch.
            self.stats.drop("agent", "lost_unacked", lost)
            log_limited(
                "agent-lost",
                "chatobs: the agent connection broke (%s); %d spans it had not acknowledged are lost",
                error,
                lost,
            )
        if error is not None:
            self.last_error = error
            self.connected_since = None
            self._next_connect = time.monotonic() + self._backoff


def _trace_times(batch: list[ReadableSpan]) -> dict[int, int]:
    """The Opik time this process fixed for each trace of the batch (and stamped on its outgoing calls): the agent
    must use the same, or this process's spans and its tool servers' would get different Opik IDs."""
    from .middleware import tracecontext

    # Not gated on the stamping switch: shutdown() turns it off before the last batches go out, and the map only
    # holds times this process fixed while it stamped.
    known = tracecontext._times  # read without the lock: a dict lookup is atomic under the GIL
    out: dict[int, int] = {}
    for span in batch:
        tid = span.context.trace_id
        if tid not in out:
            ms = known.get(tid)
            if ms is not None:
                out[tid] = ms
    return out
