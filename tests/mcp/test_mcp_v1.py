"""mcp 1.x, side by side: client and server both run in a separate environment with mcp 1.x (the shared venv has
2.x), both under chatobs, both exporting OTLP to a receiver here. chatobs creates the spans there (1.x has none).

Opt-in: create the environment with ``scripts/mcp1_env.sh`` (about 30 s), or point ``MCP1_PYTHON`` at a Python
that has ``mcp<2``; without it the test is skipped, saying so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chatobs.core import semconv
from tests.conftest import REPO
from tests.mcp.conftest import free_port, server_env, wait_port
from tests.mcp.otlp_receiver import OtlpReceiver, RSpan

MCP1_PYTHON = os.environ.get("MCP1_PYTHON") or str(REPO / ".venv-mcp1" / "bin" / "python")
HERE = Path(__file__).parent

pytestmark = pytest.mark.timeout(120)


def _mcp1_version() -> str | None:
    if not Path(MCP1_PYTHON).exists():
        return None
    out = subprocess.run(
        [MCP1_PYTHON, "-c", "import importlib.metadata as m; print(m.version('mcp'))"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    version = out.stdout.strip()
    return version if out.returncode == 0 and version.startswith("1.") else None


@pytest.fixture(scope="module")
def mcp1() -> str:
    version = _mcp1_version()
    if version is None:
        pytest.skip(f"no mcp 1.x environment at {MCP1_PYTHON}: run scripts/mcp1_env.sh or set MCP1_PYTHON")
    return version


@pytest.fixture(scope="module")
def v1_run(mcp1: str, receiver: OtlpReceiver) -> dict[str, Any]:
    """Start the 1.x HTTP server, run the 1.x client (which also spawns a 1.x stdio server) and return its output."""
    port = free_port()
    server = subprocess.Popen(
        [MCP1_PYTHON, str(HERE / "mcp1_server.py"), "--transport", "http", "--port", str(port)],
        env=server_env(receiver, OTEL_SERVICE_NAME="mcp1-server"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_port(port, server, timeout=60)
        client = subprocess.run(
            [MCP1_PYTHON, str(HERE / "mcp1_client.py"), f"http://127.0.0.1:{port}/mcp"],
            env=server_env(receiver, OTEL_SERVICE_NAME="mcp1-client"),
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert client.returncode == 0, client.stderr[-3000:]
        return json.loads(client.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def spans_of(receiver: OtlpReceiver, trace_id: str, name: str, service: str, count: int = 1) -> list[RSpan]:
    return receiver.wait_for(lambda s: s.trace_id == trace_id and s.name == name and s.service == service, count=count)


def test_v1_stdio_one_trace_and_meta_created_for_requests_without_params(
    v1_run: dict[str, Any], receiver: OtlpReceiver
) -> None:
    trace_id = v1_run["trace_id"]
    assert "Refunds" in v1_run["stdio"]
    client = spans_of(receiver, trace_id, "tools/call kb_lookup", "mcp1-client")
    assert len(client) == 1, "exactly one client span per call"
    c = client[0]
    assert c.kind == 3 and c.scope == "chatobs"
    assert c.attributes[semconv.MCP_METHOD_NAME] == "tools/call"
    assert c.attributes[semconv.GEN_AI_TOOL_NAME] == "kb_lookup"
    assert c.attributes[semconv.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert c.attributes[semconv.NETWORK_TRANSPORT] == "pipe"
    assert c.attributes[semconv.MCP_SERVER_NAME] == "chatobs-demo-tools-v1"
    assert c.attributes[semconv.MCP_PROTOCOL_VERSION]
    assert c.attributes[semconv.GEN_AI_CONVERSATION_ID] == "conv-v1"
    server = spans_of(receiver, trace_id, "tools/call kb_lookup", "mcp1-server")
    assert server[0].kind == 2 and server[0].parent_span_id == c.span_id
    assert server[0].attributes[semconv.GEN_AI_CONVERSATION_ID] == "conv-v1"
    assert server[0].attributes[semconv.USER_ID] == "user-v1"
    assert server[0].attributes[semconv.NETWORK_TRANSPORT] == "pipe"
    # tools/list has no params at all: chatobs created params._meta, so the server span still joins the trace.
    listed = spans_of(receiver, trace_id, "tools/list", "mcp1-client")
    listed_server = spans_of(receiver, trace_id, "tools/list", "mcp1-server")
    assert listed_server[0].parent_span_id in {s.span_id for s in listed}


def test_v1_http_parallel_errors_slow_and_timeout(v1_run: dict[str, Any], receiver: OtlpReceiver) -> None:
    trace_id = v1_run["trace_id"]
    assert v1_run["http"][0] == ["42", False] and v1_run["http"][1][-1] is True
    assert v1_run["timeout"] == 408
    llm = spans_of(receiver, trace_id, "chat fake-model", "mcp1-client")[0]
    calc = spans_of(receiver, trace_id, "tools/call calculator", "mcp1-client", count=2)
    slow = spans_of(receiver, trace_id, "tools/call slow_lookup", "mcp1-client", count=2)
    assert len(calc) == 2 and len(slow) == 2
    parallel = calc + [s for s in slow if s.parent_span_id == llm.span_id]
    assert len(parallel) == 3 and {s.parent_span_id for s in parallel} == {llm.span_id}, "parallel calls are siblings"
    failed = [s for s in calc if s.status_code == 2]
    assert len(failed) == 1 and failed[0].attributes[semconv.ERROR_TYPE] == "tool_error"
    timed_out = [s for s in slow if s.parent_span_id != llm.span_id][0]
    assert timed_out.status_code == 2 and timed_out.attributes[semconv.ERROR_TYPE] == "408"
    on_time = [s for s in slow if s.parent_span_id == llm.span_id][0]
    assert on_time.attributes.get(semconv.SLOW) is True
    for s in calc + slow:
        assert s.attributes[semconv.NETWORK_TRANSPORT] == "tcp"
        assert s.attributes[semconv.SERVER_ADDRESS] == "127.0.0.1"

    server = receiver.wait_for(
        lambda s: (
            s.trace_id == trace_id
            and s.service == "mcp1-server"
            and s.name.startswith("tools/call ")
            and s.attributes.get(semconv.NETWORK_TRANSPORT) == "tcp"
        ),
        count=4,
    )
    client_ids = {s.span_id for s in calc + slow}
    assert all(s.parent_span_id in client_ids for s in server), "each server span's parent is a client span"
    assert all(s.attributes[semconv.GEN_AI_CONVERSATION_ID] == "conv-v1" for s in server)
    # The client marked its calls: the server spans do not count them again (spans.owns_tool_call).
    assert all(s.attributes.get(semconv.MCP_CALLER_TRACED) is True for s in server)
    s_failed = [s for s in server if s.parent_span_id == failed[0].span_id][0]
    assert s_failed.status_code == 2 and s_failed.attributes[semconv.ERROR_TYPE] == "tool_error"
    assert any(s.attributes.get(semconv.SLOW) for s in server if s.name == "tools/call slow_lookup")


def test_v1_environment_is_really_mcp_1(mcp1: str) -> None:
    assert mcp1.startswith("1.")
    assert sys.executable != MCP1_PYTHON
