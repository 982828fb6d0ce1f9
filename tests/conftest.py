"""Shared fixtures. Every test starts with a clean chatobs environment and no chatobs running."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import chatobs
from chatobs import runtime

REPO = Path(__file__).resolve().parent.parent
_PREFIXES = ("CHATOBS_", "OTEL_", "LANGFUSE_", "OPIK_", "MCP_TRACE_", "MCP_TOKEN_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for key in list(os.environ):
        if key.upper().startswith(_PREFIXES):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CHATOBS_LOCAL_DB", str(tmp_path / "traces.db"))
    yield
    runtime.shutdown(timeout_s=2)


class Capture:
    """chatobs running with an in-memory exporter next to the configured ones."""

    def __init__(self, rt: runtime.Runtime, exporter: InMemorySpanExporter) -> None:
        self.runtime = rt
        self.exporter = exporter

    def spans(self):  # type: ignore[no-untyped-def]
        """Every span exported so far (after the whole background pipeline)."""
        self.runtime.force_flush(10)
        return list(self.exporter.get_finished_spans())

    def by_name(self, name: str):  # type: ignore[no-untyped-def]
        return [s for s in self.spans() if s.name == name]

    def clear(self) -> None:
        self.runtime.force_flush(10)
        self.exporter.clear()


@pytest.fixture
def make_capture():  # type: ignore[no-untyped-def]
    """Factory: ``make_capture(**settings)`` starts chatobs with those settings and an in-memory exporter."""

    def start(**settings):  # type: ignore[no-untyped-def]
        runtime.shutdown(timeout_s=2)
        exporter = InMemorySpanExporter()
        settings.setdefault("exporters", "none")
        settings.setdefault("export_interval_ms", 20)
        rt = chatobs.init(_span_exporters=[exporter], **settings)
        assert rt is not None
        return Capture(rt, exporter)

    return start


@pytest.fixture
def capture(make_capture):  # type: ignore[no-untyped-def]
    return make_capture()


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: this checkout's src/ first (worktrees share one venv), chatobs vars cleared."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    env.update(extra)
    return env


PYTHON = sys.executable


@pytest.fixture
def uvicorn_server():  # type: ignore[no-untyped-def]
    """Factory: serve an ASGI app with a real uvicorn on 127.0.0.1 (free port) in a thread; returns the base URL."""
    import socket
    import threading
    import time

    import uvicorn

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app, **kwargs):  # type: ignore[no-untyped-def]
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        kwargs.setdefault("lifespan", "off")
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **kwargs)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(5)
        if thread.is_alive():
            # Open streams (a Gradio client's queue/data) hold a graceful exit: force it, so the app's lifespan
            # shutdown (which stops chatobs) cannot land in the next test.
            server.force_exit = True
            thread.join(10)


@pytest.fixture(scope="session", autouse=True)
def _warm_masking_worker() -> Iterator[None]:
    """Start the shared PII-masking worker (default settings) once per test session and wait until it is ready, so
    no test's 10-second flush includes loading Presidio (seconds of CPU on a busy machine)."""
    try:
        from chatobs.config import Settings
        from chatobs.pipeline.masking_worker import shared_backend
        from chatobs.pipeline.pii import config_from_settings
    except ImportError:
        yield
        return
    backend = shared_backend(config_from_settings(Settings(_env_file=None)))  # type: ignore[call-arg]
    backend.wait_ready(180)
    yield
