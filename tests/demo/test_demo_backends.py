"""The demo honours its configuration: with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, both of its processes send their
spans over OTLP (real protobuf bytes, decoded here with ``opentelemetry-proto``) and no local viewer is mounted; with
``OPENAI_API_KEY`` set, it talks to the configured provider instead of starting its fake one."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from .harness import Demo, new_traceparent

pytestmark = pytest.mark.timeout(180)


class Collector:
    """An OTLP/HTTP traces receiver on 127.0.0.1 that keeps every span it is sent, as (service, span) pairs."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self.spans: list[tuple[str, Any]] = []
        lock = threading.Lock()
        spans = self.spans

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # stdlib name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with lock:
                    for rs in request.resource_spans:
                        svc = next(
                            (a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), ""
                        )
                        for ss in rs.scope_spans:
                            spans.extend((svc, s) for s in ss.spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def trace(self, trace_id: str, done: Any, timeout: float = 20) -> list[tuple[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [(svc, s) for svc, s in list(self.spans) if s.trace_id.hex() == trace_id]
            if done(found):
                return found
            time.sleep(0.1)
        raise AssertionError(f"trace {trace_id} incomplete: {[(svc, s.name) for svc, s in found]}")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def provider() -> Iterator[Any]:
    from demo_app.fake_llm import FakeLLM

    # Stands in for a real provider: the demo must use it (key, base URL, model) and start no fake of its own.
    with FakeLLM() as fake:
        yield fake


@pytest.fixture(scope="module")
def configured_demo(collector: Collector, provider: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """One demo configured the way a user points it elsewhere: an OTLP endpoint and an OpenAI key (one start, two
    checks: starts are the slow part of these tests)."""
    d = Demo(
        "flask",
        tmp_path_factory.mktemp("demo-configured"),
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        OPENAI_API_KEY="sk-test-key",
        OPENAI_BASE_URL=provider.base_url + "/v1",
        DEMO_MODEL="my-model",
    )
    yield d
    d.stop()


def test_otlp_endpoint_receives_the_whole_turn_from_both_processes(configured_demo: Demo, collector: Collector) -> None:
    trace_id, traceparent = new_traceparent()
    r = configured_demo.chat("calculate 2+3", conversation_id="conv-otlp", traceparent=traceparent)
    assert r.status_code == 200 and r.json()["reply"] == "The result is 5"

    def complete(found: list[tuple[str, Any]]) -> bool:
        services = {svc for svc, _ in found}
        return {"chatobs-demo", "demo-mcp-server"} <= services and sum(
            s.name.startswith("chat ") for _, s in found
        ) >= 2

    found = collector.trace(trace_id, complete)
    for svc, span in found:
        attrs = {a.key: a.value.string_value for a in span.attributes}
        assert attrs.get("gen_ai.conversation.id") == "conv-otlp", (svc, span.name)
    # Nothing was written locally, and there is no viewer to link to.
    assert not configured_demo.db.exists()
    assert configured_demo.client.get("/api/config").json()["viewer_url"] is None
    assert configured_demo.client.get("/_chatobs/").status_code == 404
    assert "traces: otlp" in configured_demo.output()  # the banner says where traces go, and why


def test_openai_key_switches_to_the_configured_provider(configured_demo: Demo, provider: Any) -> None:
    provider.reset()
    r = configured_demo.chat("calculate 4*5")
    assert r.status_code == 200 and r.json()["reply"] == "The result is 20"
    chats = [q for q in provider.requests if q["path"] == "/chat/completions"]
    assert len(chats) == 2 and all(q["json"]["model"] == "my-model" for q in chats)
    headers = {k.lower(): v for k, v in chats[0]["headers"].items()}
    assert headers["authorization"] == "Bearer sk-test-key"
    assert "x-conversation-id" not in headers  # the fake's test hook is not sent to a real provider
    output = configured_demo.output()
    assert "fake LLM provider on" not in output and "(OPENAI_API_KEY is set)" in output
    assert "sk-test-key" not in output
