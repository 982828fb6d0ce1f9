"""A tiny OTLP/HTTP trace receiver on 127.0.0.1: decodes the real protobuf bytes other processes export."""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


@dataclass
class RSpan:
    """One received span, IDs as hex like ``format(id, '032x')``."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: int  # OTLP enum: 1 internal, 2 server, 3 client
    status_code: int  # 0 unset, 1 ok, 2 error
    attributes: dict[str, Any] = field(default_factory=dict)
    service: str | None = None
    scope: str = ""


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[RSpan] = []
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                encoding = (self.headers.get("content-encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver._add(request)
                payload = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _add(self, request: ExportTraceServiceRequest) -> None:
        found: list[RSpan] = []
        for rs in request.resource_spans:
            service = next((_value(a.value) for a in rs.resource.attributes if a.key == "service.name"), None)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    found.append(
                        RSpan(
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex() or None,
                            kind=s.kind,
                            status_code=s.status.code,
                            attributes={a.key: _value(a.value) for a in s.attributes},
                            service=service,
                            scope=ss.scope.name,
                        )
                    )
        with self._lock:
            self.requests += 1
            self.spans.extend(found)

    def wait_for(self, predicate: Any, count: int = 1, timeout: float = 15.0) -> list[RSpan]:
        """Spans matching ``predicate`` once at least ``count`` arrived; fails the test after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                matched = [s for s in self.spans if predicate(s)]
            if len(matched) >= count or time.monotonic() > deadline:
                assert len(matched) >= count, (
                    f"expected {count} matching spans, got {len(matched)}: {[s.name for s in self.spans]}"
                )
                return matched
            time.sleep(0.05)
