"""The agent's socket server: accepts app processes of the same user, rebuilds their spans and feeds the pipeline.

One thread per connected process (``socketserver``): a few web workers and tool servers, each sending batches. A
connection's spans go into the same ``PipelineProcessor`` the in-process mode uses, so every stage (cost, metrics,
alerts, tail sampling, masking) and every exporter sees every process's spans.
"""

from __future__ import annotations

import logging
import os
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource

from ... import __version__
from ...core import wire
from ...core.stats import STATS

__all__ = ["AgentServer", "Client"]

logger = logging.getLogger("chatobs.agent")


@dataclass
class Client:
    pid: int
    service: str
    since: float = field(default_factory=time.time)
    spans: int = 0
    batches: int = 0
    drops: dict[str, int] = field(default_factory=dict)  # reported by the client: its queue-full and lost spans


class _Handler(socketserver.BaseRequestHandler):
    server: AgentServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        try:
            uid = wire.peer_uid(sock)
        except OSError:
            return
        if uid != os.getuid():
            # Only the agent's own user: their spans are theirs, and marshal must never read another user's bytes.
            STATS.count("agent_refused_peer")
            logger.warning(
                "chatobs agent: refused a connection from uid %d (the agent runs as uid %d)", uid, os.getuid()
            )
            return
        self.server.serve_connection(sock)


class AgentServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, path: Path, runtime: Any) -> None:
        self.path = path
        self.runtime = runtime
        self.pipeline = runtime.pipeline
        self.started = time.time()
        self.clients: dict[int, Client] = {}
        self._lock = threading.Lock()
        self._ids = iter(range(1, 1 << 62))
        self.last_activity = time.monotonic()
        self.stopping = False
        _remove_stale(path)
        old_umask = os.umask(0o177)  # the socket file itself 0600, on top of the private directory
        try:
            super().__init__(str(path), _Handler)
        finally:
            os.umask(old_umask)

    # --- one connection ---------------------------------------------------------------------------------------------
    def serve_connection(self, sock: socket.socket) -> None:
        cid = next(self._ids)
        reader = wire.FrameReader()
        resource = Resource.get_empty()
        client: Client | None = None
        sock.settimeout(None)
        try:
            while True:
                data = sock.recv(1 << 20)
                if not data:
                    return
                for kind, payload in reader.feed(data):
                    if kind == wire.HELLO:
                        attrs = wire.as_mapping(payload.get("resource"))
                        resource = Resource(dict(attrs))
                        client = Client(pid=int(payload.get("pid", 0)), service=str(attrs.get("service.name", "")))
                        with self._lock:
                            self.clients[cid] = client
                    elif kind == wire.SPANS:
                        seq, records, times = payload
                        if times:
                            _adopt_trace_times(times)
                        self._feed(records, resource, client)
                        if seq:
                            sock.sendall(wire.encode_frame(wire.ACK, seq))
                    elif kind == wire.FLUSH:
                        fid, timeout_ms = payload
                        ok = self.pipeline.force_flush(max(1, int(timeout_ms)))
                        sock.sendall(wire.encode_frame(wire.FLUSH_ACK, (fid, bool(ok))))
                    elif kind == wire.DROPS:
                        self._drops(payload, client)
                    elif kind == wire.STATUS:
                        sock.sendall(wire.encode_frame(wire.STATUS_REPLY, self.status()))
                    elif kind == wire.METRICS:
                        sock.sendall(wire.encode_frame(wire.METRICS_REPLY, _prometheus()))
        except (OSError, ValueError, EOFError, TypeError) as exc:
            logger.debug("chatobs agent: connection %d closed: %s", cid, type(exc).__name__)
        finally:
            with self._lock:
                self.clients.pop(cid, None)
                self.last_activity = time.monotonic()

    def _feed(self, records: list[tuple[Any, ...]], resource: Resource, client: Client | None) -> None:
        on_end = self.pipeline.on_end
        n = 0
        for rec in records:
            try:
                span = wire.span_from_record(rec, resource)
            except Exception:  # noqa: BLE001 - a malformed record costs only itself
                STATS.drop("agent", "bad_record")
                continue
            on_end(span)
            n += 1
        if client is not None:
            client.spans += n
            client.batches += 1
        self.last_activity = time.monotonic()

    def _drops(self, payload: Any, client: Client | None) -> None:
        for key, n in wire.as_mapping(payload).items():
            where, _, reason = str(key).partition("/")
            if isinstance(n, int) and n > 0:
                # Counted where the metrics and doctor read drops, as spans this pipeline never received.
                STATS.drop(f"app:{where}", reason, n)
                if client is not None:
                    client.drops[str(key)] = client.drops.get(str(key), 0) + n

    # --- status -----------------------------------------------------------------------------------------------------
    def idle_for(self) -> float:
        with self._lock:
            if self.clients:
                return 0.0
        return time.monotonic() - self.last_activity

    def status(self) -> dict[str, Any]:
        rt = self.runtime
        with self._lock:
            clients = [
                {
                    "pid": c.pid,
                    "service": c.service,
                    "since": c.since,
                    "spans": c.spans,
                    "batches": c.batches,
                    "drops": dict(c.drops),
                }
                for c in self.clients.values()
            ]
        exporters = []
        for ch in rt.channels:
            exporters.append(
                {
                    "name": ch.name,
                    "pending": ch.pending(),
                    "degraded": bool(ch.degraded),
                    "last_error": ch.last_error,
                    "reason": ch.spec.reason,
                }
            )
        snap = STATS.snapshot()
        return {
            "pid": os.getpid(),
            "version": __version__,
            "socket": str(self.path),
            "started": self.started,
            "uptime_s": time.time() - self.started,
            "clients": clients,
            "pipeline_queue": len(getattr(self.pipeline, "_inbox", ())),
            "exporters": exporters,
            "stats": snap,
            "masking": _masking_health(rt),
            "prometheus_port": _prometheus_port(),
        }


def _adopt_trace_times(times: dict[int, int]) -> None:
    """The Opik time each app process fixed for its traces, honoured as if passed on by an upstream process."""
    from opentelemetry.trace import TraceState

    from ...recording.middleware.tracecontext import CHATOBS_KEY, trace_time_ms

    for tid, ms in times.items():
        trace_time_ms(int(tid), int(ms), TraceState([(CHATOBS_KEY, f"t{int(ms):x}")]))


def _remove_stale(path: Path) -> None:
    """A socket file nobody answers on is a dead agent's: remove it. A live one means another agent runs here."""
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise RuntimeError(f"another agent already answers on {path}")


def _prometheus() -> tuple[int, bytes, str]:
    from ...processing.metrics.recorder import render_prometheus

    return render_prometheus()


def _prometheus_port() -> int | None:
    from ...processing.metrics import recorder as metrics

    rec = metrics.current()
    return rec.prometheus_port if rec is not None else None


def _masking_health(rt: Any) -> dict[str, Any]:
    for stage in rt.stages:
        masker = getattr(stage, "masker", None)
        if masker is None:
            continue
        info: dict[str, Any] = {"engine": rt.settings.pii_mode}
        events = dict(STATS.events)
        info["failures"] = {k: v for k, v in events.items() if "mask" in k}
        backend = getattr(masker, "backend", None) or getattr(masker, "_backend", None)
        info["backend"] = type(backend).__name__ if backend is not None else "none"
        return info
    return {"engine": "none"}
