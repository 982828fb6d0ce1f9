"""A recording HTTP server on 127.0.0.1 for exporter tests: it speaks enough OTLP/HTTP, Langfuse and Opik to let the
real exporters and SDKs send to it, decodes what they send (OTLP protobuf via ``opentelemetry-proto``, JSON, gzip),
and can misbehave on purpose (500s, stalls, garbage, TLS with an untrusted certificate).

    with RecordingServer() as srv:
        ...  # point an exporter at srv.url
        srv.wait_for(lambda s: len(s.otlp_spans()) >= 3)

Modes (``srv.mode = ...``, switchable while running): ``ok``, ``error`` (HTTP 500), ``stall`` (sleep ``stall_s``
before answering, the connection stays open), ``garbage`` (HTTP 200 with a body that is not what the client expects),
``reset`` (close the connection without answering).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import socket
import ssl
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes  # decompressed
    raw_size: int
    json: Any = None
    otlp: dict[str, Any] | None = None  # ExportTraceServiceRequest as a dict (MessageToDict, ids in hex)
    at: float = field(default_factory=time.monotonic)


def _any_value(v: dict[str, Any]) -> Any:
    if "stringValue" in v:
        return v["stringValue"]
    if "boolValue" in v:
        return v["boolValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return v["doubleValue"]
    if "arrayValue" in v:
        return [_any_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return {kv["key"]: _any_value(kv.get("value", {})) for kv in v["kvlistValue"].get("values", [])}
    return None


def flat_spans(otlp: dict[str, Any]) -> list[dict[str, Any]]:
    """Spans of one OTLP request, each with ``attributes`` as a plain dict and its resource's attributes."""
    out = []
    for rs in otlp.get("resourceSpans", []):
        resource = {kv["key"]: _any_value(kv.get("value", {})) for kv in rs.get("resource", {}).get("attributes", [])}
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                span = dict(sp)
                span["attributes"] = {kv["key"]: _any_value(kv.get("value", {})) for kv in sp.get("attributes", [])}
                span["resource"] = resource
                span["scope"] = ss.get("scope", {}).get("name")
                out.append(span)
    return out


def _b64_to_hex(d: dict[str, Any]) -> dict[str, Any]:
    import base64

    for rs in d.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if sp.get(key):
                        sp[key] = base64.b64decode(sp[key]).hex()
    return d


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _read(self) -> tuple[bytes, int]:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        enc = (self.headers.get("Content-Encoding") or "").lower()
        body = raw
        if enc == "gzip":
            body = gzip.decompress(raw)
        elif enc == "deflate":
            body = zlib.decompress(raw)
        return body, len(raw)

    def _answer(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        rec: RecordingServer = self.server.recorder
        rec._record(Request("GET", self.path, dict(self.headers.items()), b"", 0))
        self._answer(200, b"{}", "application/json")

    def do_POST(self) -> None:
        rec: RecordingServer = self.server.recorder
        body, raw_size = self._read()
        mode = rec.mode
        if mode == "stall":
            rec._stalled.wait(rec.stall_s)
        if mode == "reset":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        req = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body, raw_size)
        ctype = (self.headers.get("Content-Type") or "").lower()
        try:
            if "protobuf" in ctype:
                msg = ExportTraceServiceRequest()
                msg.ParseFromString(body)
                req.otlp = _b64_to_hex(MessageToDict(msg))
            elif "json" in ctype and body:
                req.json = json.loads(body)
        except Exception as exc:  # noqa: BLE001 - a test will notice the missing decode
            req.json = {"_decode_error": repr(exc)}
        if mode == "error":
            rec._record(req, accepted=False)
            self._answer(500, b'{"message":"internal error"}', "application/json")
            return
        if mode == "garbage":
            rec._record(req, accepted=False)
            self._answer(200, b"\x00\xffthis is not protobuf nor json{{{", ctype or "application/json")
            return
        rec._record(req, accepted=True)
        if "protobuf" in ctype:
            self._answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")
        elif self.path.rstrip("/").endswith("/batch") or self.command == "PATCH":
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._answer(200, b"{}", "application/json")

    do_PUT = do_POST  # Opik's feedback scores are PUT
    do_PATCH = do_POST  # Opik's trace update (PATCH /v1/private/traces/{id})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    recorder: RecordingServer


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (clients that do not trust it fail the TLS handshake)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class RecordingServer:
    def __init__(self, mode: str = "ok", *, stall_s: float = 10.0, tls: bool = False) -> None:
        self.mode = mode
        self.stall_s = stall_s
        self.requests: list[Request] = []
        self.rejected: list[Request] = []
        self._lock = threading.Condition()
        self._stalled = threading.Event()  # set on stop() so stalled handlers end
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.recorder = self
        self.tls = tls
        self.cert_path: Path | None = None
        if tls:
            tmp = Path(tempfile.mkdtemp(prefix="chatobs-tls-"))
            cert, key = self_signed_cert(tmp)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
            self.cert_path = cert
        self.port = self._server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        self._stalled.set()
        self._server.shutdown()
        self._server.server_close()

    def _record(self, req: Request, accepted: bool = True) -> None:
        with self._lock:
            (self.requests if accepted else self.rejected).append(req)
            self._lock.notify_all()

    # --- reading what arrived ---------------------------------------------------------------------------------------
    def wait_for(self, predicate: Callable[[RecordingServer], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.05))
        return True

    def by_path(self, suffix: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.split("?")[0].endswith(suffix)]

    def otlp_spans(self, path_suffix: str = "/v1/traces") -> list[dict[str, Any]]:
        return [s for r in self.by_path(path_suffix) if r.otlp for s in flat_spans(r.otlp)]

    def all_backends(self) -> dict[str, Any]:
        """``chatobs.init()`` settings sending to this server as OTLP, Langfuse and Opik at once."""
        return {
            "exporters": "otlp,langfuse,opik",
            "export_interval_ms": 20,
            "otlp_endpoint": self.url,
            "langfuse_public_key": "pk-lf-1",
            "langfuse_secret_key": "sk-lf-1",
            "langfuse_base_url": self.url,
            "opik_url": f"{self.url}/api",
            "opik_project_name": "demo",
        }

    def opik_feedback_scores(self) -> list[dict[str, Any]]:
        return [f for r in self.by_path("/v1/private/traces/feedback-scores") for f in (r.json or {}).get("scores", [])]

    def langfuse_scores(self) -> list[dict[str, Any]]:
        return [sc for r in self.by_path("/api/public/scores") for sc in (r.json or [])]

    def opik_traces(self) -> list[dict[str, Any]]:
        return [t for r in self.by_path("/v1/private/traces/batch") for t in (r.json or {}).get("traces", [])]

    def opik_trace_updates(self) -> list[tuple[str, dict[str, Any]]]:
        """(Opik trace ID, body) of every trace update (PATCH), in arrival order."""
        with self._lock:
            return [
                (r.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1], r.json or {})
                for r in self.requests
                if r.method == "PATCH" and "/v1/private/traces/" in r.path
            ]

    def opik_spans(self) -> list[dict[str, Any]]:
        return [s for r in self.by_path("/v1/private/spans/batch") for s in (r.json or {}).get("spans", [])]


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
