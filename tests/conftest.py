"""Shared fixtures. Every test starts with a clean chatobs environment and no chatobs running."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import chatobs
from chatobs.runtime import wiring as runtime

REPO = Path(__file__).resolve().parent.parent
_PREFIXES = ("CHATOBS_", "OTEL_", "LANGFUSE_", "OPIK_", "MCP_TRACE_", "MCP_TOKEN_")


_agent_dir: str | None = None  # this test's agent socket directory, passed on by subprocess_env()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    global _agent_dir
    for key in list(os.environ):
        if key.upper().startswith(_PREFIXES):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CHATOBS_LOCAL_DB", str(tmp_path / "traces.db"))
    # Tests in this process check the in-process pipeline (its channels, stages, stats); the apps and servers they
    # spawn run as users' apps do, with an agent. Each test gets its own short socket directory (Unix socket paths
    # are limited to 107 bytes; tmp_path is too long) and any agent started there is stopped at teardown.
    monkeypatch.setenv("CHATOBS_AGENT", "inprocess")
    _agent_dir = new_agent_dir()
    monkeypatch.setenv("CHATOBS_AGENT_DIR", _agent_dir)
    yield
    runtime.shutdown(timeout_s=2)
    stop_agents(_agent_dir)
    shutil.rmtree(_agent_dir, ignore_errors=True)
    _agent_dir = None


_session_dir: str | None = None


def _session_agent_dir() -> str:
    """For processes started by module-scoped fixtures (set up before any test's own directory exists)."""
    global _session_dir
    if _session_dir is None:
        _session_dir = tempfile.mkdtemp(prefix="co-s-", dir="/tmp")
    return _session_dir


@pytest.fixture(scope="session", autouse=True)
def _stop_session_agents() -> Iterator[None]:
    yield
    if _session_dir is not None:
        stop_agents(_session_dir)
        shutil.rmtree(_session_dir, ignore_errors=True)


def new_agent_dir() -> str:
    """A private, short socket directory (for a harness that outlives one test; stop with ``stop_agents``)."""
    return tempfile.mkdtemp(prefix="co-", dir="/tmp")


def stop_agents(directory: str, timeout_s: float = 10.0) -> None:
    """SIGTERM every agent that wrote a pid file in ``directory``; SIGKILL what is left after ``timeout_s``."""
    import signal
    import time

    pids = []
    for pid_file in Path(directory).glob("*.pid"):
        try:
            pids.append(int(pid_file.read_text().strip()))
        except (OSError, ValueError):
            continue
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + timeout_s
    for pid in pids:
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie (an agent this process started directly) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


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
    env["CHATOBS_AGENT_DIR"] = _agent_dir or _session_agent_dir()
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
        from chatobs.processing.masking.worker import shared_backend
        from chatobs.processing.pii.engine import config_from_settings
    except ImportError:
        yield
        return
    backend = shared_backend(config_from_settings(Settings(_env_file=None)))  # type: ignore[call-arg]
    backend.wait_ready(180)
    yield
