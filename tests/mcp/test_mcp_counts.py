"""One slow MCP tool call is one alert and one count, with the demo MCP server running chatobs in its own process.

The app (this process: FastAPI + chatobs + the real mcp 2.x client) and the server process both run the alert rules
and the metrics, both post alerts to one recording server, and the server's metrics are read from its Prometheus
endpoint. A client without chatobs (a plain mcp script in a third process) shows the server counting a call nobody
else counts."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client.parser import text_string_to_metric_families

from chatobs.core import semconv
from chatobs.processing.alerts import rules as alerts
from tests.conftest import subprocess_env
from tests.mcp.conftest import free_port, http_mcp_server, server_env
from tests.mcp.otlp_receiver import OtlpReceiver
from tests.recording_server import RecordingServer

pytest.importorskip("mcp.shared._otel", reason="mcp 2.x not installed")
from tests.mcp.test_mcp_v2 import make_app, post_chat

pytestmark = pytest.mark.timeout(90)

SLOW = "slow_lookup"


class ToolServer:
    def __init__(self, url: str, metrics_port: int) -> None:
        self.url = url
        self.metrics_port = metrics_port

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of the server process's Prometheus endpoint, by (name, sorted labels)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        return sum(v for (n, ls), v in self.scrape().items() if n == name and all((k, labels[k]) in ls for k in labels))

    def counts(self) -> tuple[float, float, float]:
        """(tool invocations, tool duration observations, slow_tool alerts) of the slow tool, in the server process."""
        return (
            self.value("mcp_tool_invocations_total", gen_ai_tool_name=SLOW),
            self.value("mcp_tool_duration_milliseconds_count", gen_ai_tool_name=SLOW),
            self.value("chatobs_alerts_total", chatobs_alert_rule="slow_tool"),
        )


@pytest.fixture(scope="module")
def hooks() -> Iterator[RecordingServer]:
    with RecordingServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def tool_server(receiver: OtlpReceiver, hooks: RecordingServer) -> Iterator[ToolServer]:
    """The demo MCP server over streamable HTTP, with chatobs's metrics (Prometheus) and alerts (webhook) on."""
    metrics_port = free_port()
    env = server_env(
        receiver,
        CHATOBS_METRICS="true",
        CHATOBS_PROMETHEUS_PORT=str(metrics_port),
        CHATOBS_ALERT_WEBHOOK_URL=f"{hooks.url}/server",
        CHATOBS_ALERT_COOLDOWN_S="0",
    )
    with http_mcp_server(env, metrics_port) as url:
        yield ToolServer(url, metrics_port)


def app_total(reader: InMemoryMetricReader, name: str, tool: str) -> float:
    data = reader.get_metrics_data()
    found = 0.0
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    for p in m.data.data_points:
                        if p.attributes.get(semconv.GEN_AI_TOOL_NAME) == tool:
                            found += p.count if hasattr(p, "count") else p.value
    return found


async def test_one_slow_call_from_a_chatobs_app_is_one_alert_and_one_count(
    make_capture: Any,
    reader: InMemoryMetricReader,
    receiver: OtlpReceiver,
    hooks: RecordingServer,
    tool_server: ToolServer,
) -> None:
    before = tool_server.counts()
    sent_before = len(hooks.by_path("/server"))
    cap = make_capture(slow_tool_ms=500, alert_webhook_url=f"{hooks.url}/app", alert_cooldown_s=0)
    r = await post_chat(
        make_app(lambda: tool_server.url), {"calls": [[SLOW, {"query": "pricing"}]]}, conversation="conv-slow"
    )
    trace_id = r.headers["x-trace-id"]
    cap.runtime.force_flush()
    stage = alerts.current()
    assert stage is not None and stage.join(10)
    # The server span leaves the server process after every stage (alerts, metrics) has seen it.
    (server_span,) = receiver.wait_for(lambda s: s.trace_id == trace_id and s.name == f"tools/call {SLOW}")
    assert server_span.attributes[semconv.MCP_CALLER_TRACED] is True
    assert server_span.attributes[semconv.SLOW] is True  # the server saw a slow call too; it just does not own it

    app_alerts = [q.json for q in hooks.by_path("/app") if q.json["trace_id"] == trace_id]
    assert [a["rule"] for a in app_alerts] == ["slow_tool"] and app_alerts[0]["subject"]["tool"] == SLOW
    assert len(hooks.by_path("/server")) == sent_before
    assert app_total(reader, "mcp.tool.invocations", SLOW) == 1
    assert app_total(reader, "mcp.tool.duration", SLOW) == 1
    after = tool_server.counts()
    assert after == before, "the server process counted a call the app's client span already counts"
    assert tool_server.value("mcp_server_operation_duration_seconds_count", gen_ai_tool_name=SLOW) >= 1


_PLAIN_CLIENT = textwrap.dedent("""
    import asyncio, sys
    from mcp import Client

    async def main():
        async with Client(sys.argv[1]) as client:
            await client.call_tool("slow_lookup", {"query": "pricing"})

    asyncio.run(main())
""")


def test_a_slow_call_from_a_client_without_chatobs_is_counted_by_the_server(
    receiver: OtlpReceiver, hooks: RecordingServer, tool_server: ToolServer
) -> None:
    before = tool_server.counts()
    sent_before = len(hooks.by_path("/server"))
    # No chatobs in this client: subprocess_env clears CHATOBS_* and the script never imports it.
    subprocess.run([sys.executable, "-c", _PLAIN_CLIENT, tool_server.url], env=subprocess_env(), check=True, timeout=60)
    receiver.wait_for(lambda s: s.name == f"tools/call {SLOW}" and semconv.MCP_CALLER_TRACED not in s.attributes)
    assert hooks.wait_for(lambda h: len(h.by_path("/server")) > sent_before)
    after = tool_server.counts()
    assert [a - b for a, b in zip(after, before, strict=False)] == [1, 1, 1]
    alert = hooks.by_path("/server")[-1].json
    assert alert["rule"] == "slow_tool" and alert["subject"]["tool"] == SLOW
