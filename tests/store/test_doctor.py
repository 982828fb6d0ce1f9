"""`chatobs doctor` against a healthy OTLP receiver, a dead port, a bad config, and the local store."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chatobs.tools.cli.main import main


class Receiver:
    """A tiny OTLP/HTTP trace receiver on 127.0.0.1 that decodes what it gets with opentelemetry-proto."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], ExportTraceServiceRequest]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, req))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()
                self.wfile.write(b"")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def span_names(self) -> list[str]:
        return [s.name for _, r in self.requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_doctor_healthy_backend(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20top-secret-value")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-very-secret")
    code = main(["doctor", "--timeout", "5"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "top-secret-value" not in out and "sk-lf-very-secret" not in out
    assert re.search(r"OTEL_EXPORTER_OTLP_HEADERS\s+\*\*\* \(set\)\s+environment", out), out
    assert "otlp      OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set" in out
    assert re.search(
        r"otlp\s+OK\s+[\d.]+ ms\s+synthetic trace [0-9a-f]{32} accepted by http://127.0.0.1:\d+/v1/traces", out
    ), out
    # The backend really received the synthetic trace, with the configured header.
    assert sorted(receiver.span_names()) == ["chat chatobs-doctor", "chatobs doctor"]
    assert receiver.requests[0][0]["authorization"] == "Bearer top-secret-value"


def test_doctor_dead_backend(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    port = _closed_port()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    code = main(["doctor", "--timeout", "1.5", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["ok"] is False
    [check] = report["checks"]
    assert check["exporter"] == "otlp" and check["ok"] is False
    assert f"127.0.0.1:{port}" in check["detail"] and "Connection refused" in check["detail"]
    assert check["latency_ms"] < 10000


def test_doctor_bad_config(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CHATOBS_SAMPLE_RATE", "lots")
    assert main(["doctor"]) == 2
    out = capsys.readouterr().out
    assert "INVALID" in out and "CHATOBS_SAMPLE_RATE='lots'" in out


def test_doctor_local_store_leaves_no_trace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "doc.db"
    monkeypatch.setenv("CHATOBS_LOCAL_DB", str(db))
    code = main(["doctor", "--all"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "local     no backend configured: the local store is the default" in out
    assert re.search(r"local\s+OK", out)
    assert "CHATOBS_SAMPLE_RATE" in out  # --all lists defaults too
    from chatobs.export.local.store import connect

    assert connect(db).execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 0


def test_doctor_unwritable_store_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "not-a-db"
    bad.write_bytes(b"this is not sqlite" * 100)
    monkeypatch.setenv("CHATOBS_LOCAL_DB", str(bad))
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert code == 1
    assert re.search(r"local\s+FAILED", out), out
