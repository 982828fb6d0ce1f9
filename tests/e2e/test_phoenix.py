"""End to end against real backends running here: Arize Phoenix (its REST API reads the spans back) directly and
behind the rotel collector. ``make e2e`` runs these; Phoenix lives in its own venv (it requires anthropic<2, which
conflicts with the pinned anthropic 2.x), found via CHATOBS_E2E_PHOENIX_PYTHON or .e2e-venv/bin/python."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import chatobs
from chatobs.core import semconv as sc
from tests.conftest import REPO
from tests.dispatch.turns import chat_turn
from tests.recording_server import closed_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _phoenix_python() -> str:
    for candidate in (os.environ.get("CHATOBS_E2E_PHOENIX_PYTHON"), str(REPO / ".e2e-venv/bin/python")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.skip("Phoenix not installed: run `make e2e` (creates .e2e-venv) or set CHATOBS_E2E_PHOENIX_PYTHON")


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:  # 127.0.0.1 only
        return json.loads(r.read())


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("phoenix")
    port, grpc_port = closed_port(), closed_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(work),
        "PHOENIX_WORKING_DIR": str(work),
        "PHOENIX_SQL_DATABASE_URL": f"sqlite:///{work}/phoenix.db",
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    log = open(work / "phoenix.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [_phoenix_python(), str(Path(__file__).with_name("phoenix_local.py"))],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"phoenix exited: {(work / 'phoenix.log').read_text()[-3000:]}")
        try:
            _get(f"{url}/v1/projects")
            break
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("phoenix did not start within 180 s")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _spans(url: str, project: str, want: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            spans = _get(f"{url}/v1/projects/{project}/spans?limit=100")["data"]
        except Exception:  # noqa: BLE001 - project appears with its first span
            spans = []
        if len(spans) >= want:
            return spans
        time.sleep(0.5)
    return spans


def _check_turn(spans: list[dict[str, Any]], trace_id: str) -> None:
    mine = {s["name"]: s for s in spans if s["context"]["trace_id"] == trace_id}
    assert set(mine) >= {"POST /chat", "chat gpt-4o-mini", "tools/call get_weather"}, list(mine)
    llm = mine["chat gpt-4o-mini"]
    assert llm["parent_id"] == mine["POST /chat"]["context"]["span_id"]
    attrs = llm["attributes"]
    flat = json.dumps(attrs)
    assert "gpt-4o-mini" in flat and "conv-1" in flat and "user-1" in flat
    assert attrs.get(sc.GEN_AI_USAGE_INPUT_TOKENS, attrs.get("gen_ai", {}).get("usage", {}).get("input_tokens")) == 12


def test_phoenix_direct(phoenix: str) -> None:
    chatobs.init(exporters="otlp", otlp_endpoint=phoenix, service_name="e2e-direct", export_interval_ms=50)
    trace_id = chat_turn()
    chatobs.shutdown()
    _check_turn(_spans(phoenix, "default", 3), trace_id)


def test_phoenix_behind_rotel(phoenix: str, tmp_path: Path) -> None:
    import rotel

    agent = Path(rotel.__file__).with_name("rotel-agent")
    http_port, grpc_port = closed_port(), closed_port()
    proc = subprocess.Popen(
        [
            str(agent),
            "start",
            "--otlp-http-endpoint",
            f"127.0.0.1:{http_port}",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{grpc_port}",
            "--exporter",
            "otlp",
            "--otlp-exporter-endpoint",
            phoenix,
            "--otlp-exporter-protocol",
            "http",
            "--batch-timeout",
            "100ms",
            "--pid-file",
            str(tmp_path / "rotel.pid"),
            "--log-file",
            str(tmp_path / "rotel.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        chatobs.init(exporters="otlp", otlp_endpoint=f"http://127.0.0.1:{http_port}", export_interval_ms=50)
        trace_id = chat_turn()
        chatobs.shutdown()
        spans = _spans(phoenix, "default", 6)
        _check_turn(spans, trace_id)
    finally:
        proc.terminate()
        proc.wait(10)
