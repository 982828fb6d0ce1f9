"""Fixtures: an OTLP receiver and the demo MCP server as a real separate process (stdio or streamable HTTP)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conftest import subprocess_env
from tests.mcp.otlp_receiver import OtlpReceiver
from tests.metrics.conftest import reader  # noqa: F401 - the in-memory metric reader, for the MCP count tests

# The server process: OTLP to the receiver, short export interval, short slow tool, no Presidio start-up cost.
SLOW_TOOL_S = "1.0"
SERVER_SLOW_MS = "500"


def server_env(receiver: OtlpReceiver, **extra: str) -> dict[str, str]:
    env = {
        "CHATOBS_EXPORTERS": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": "demo-mcp-server",
        "CHATOBS_EXPORT_INTERVAL_MS": "50",
        "CHATOBS_PII": "off",
        "CHATOBS_METRICS": "false",
        "CHATOBS_SLOW_TOOL_MS": SERVER_SLOW_MS,
        "DEMO_SLOW_TOOL_SECONDS": SLOW_TOOL_S,
    }
    env.update(extra)
    return subprocess_env(**env)


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver().start()
    yield r
    r.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"MCP server exited early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"MCP server did not listen on {port} within {timeout}s")


@contextmanager
def http_mcp_server(env: dict[str, str], *also_listening: int) -> Iterator[str]:
    """The demo MCP server over streamable HTTP on 127.0.0.1 in its own process; yields its URL once it (and the
    ports in ``also_listening``, e.g. its Prometheus endpoint) listens."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo_app.mcp_server", "--transport", "http", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for p in (port, *also_listening):
            wait_port(p, proc)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def http_server(receiver: OtlpReceiver) -> Iterator[str]:
    """The demo MCP server over streamable HTTP, with chatobs (capture of tool I/O on)."""
    with http_mcp_server(server_env(receiver, CHATOBS_CAPTURE_TOOL_IO="true")) as url:
        yield url
