"""Through a real FastAPI app with chatobs's middleware: request metrics per route and a slow tool alert whose trace
ID is the one the response returned in X-Trace-Id. The LLM and MCP adapters are written in parallel, so the endpoint
creates their spans by hand (same attributes)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from chatobs.core import semconv
from chatobs.processing.alerts import rules as alerts

from .helpers import Clock, WebhookReceiver, count, llm_call, points, tool_call, total


def _app(slow_ms: float) -> Any:
    from fastapi import FastAPI, HTTPException

    import chatobs

    app = FastAPI()
    app.add_middleware(chatobs.ChatObsMiddleware)

    @app.post("/api/chat/{room}")
    async def chat(room: str, body: dict[str, Any]) -> dict[str, str]:
        clock = Clock()
        llm_call(clock, input_tokens=50, output_tokens=10, cost=0.0005)
        tool_call(clock, tool="lookup", duration_ms=slow_ms)
        if body.get("fail"):
            raise HTTPException(status_code=503, detail="down")
        return {"reply": "ok"}

    return app


async def test_requests_and_slow_tool_alert_through_fastapi(
    make_capture: Any, reader: InMemoryMetricReader, webhook: WebhookReceiver
) -> None:
    cap = make_capture(slow_tool_ms=1000, alert_webhook_url=webhook.url, alert_cooldown_s=0)
    app = _app(slow_ms=1500)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        ok = await client.post(
            "/api/chat/room-42", json={"message": "hi", "conversation_id": "c-1", "tenant_id": "acme"}
        )
        failed = await client.post(
            "/api/chat/room-43", json={"fail": True, "conversation_id": "c-2", "tenant_id": "acme"}
        )
    assert ok.status_code == 200 and failed.status_code == 503
    cap.runtime.force_flush()
    stage = alerts.current()
    assert stage is not None and stage.join(10)

    route = "/api/chat/{room}"  # the framework's template, not the raw path
    assert count(reader, "http.server.request.duration", **{semconv.HTTP_ROUTE: route}) == 2
    assert (
        count(
            reader,
            "http.server.request.duration",
            **{semconv.HTTP_ROUTE: route, semconv.HTTP_RESPONSE_STATUS_CODE: 503},
        )
        == 1
    )
    assert total(reader, "chatobs.cost.usd", **{semconv.TENANT_ID: "acme"}) == pytest.approx(0.001)
    assert [a["trace_id"] for a in webhook.received] == [ok.headers["x-trace-id"], failed.headers["x-trace-id"]]
    assert webhook.received[0]["conversation_id"] == "c-1"


async def test_hashed_user_id_is_one_value_on_spans_metrics_and_alerts(
    make_capture: Any, reader: InMemoryMetricReader, webhook: WebhookReceiver
) -> None:
    cap = make_capture(
        hash_user_ids=True,
        hash_secret="k" * 32,
        metrics_user_attribute=True,
        alert_budget_usd=0.0001,
        alert_budget_by="user",
        alert_webhook_url=webhook.url,
        alert_cooldown_s=0,
        pii="off",
    )
    app = _app(slow_ms=5)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        r = await client.post(
            "/api/chat/room-1", json={"conversation_id": "c-h"}, headers={"X-User-Id": "alice@example.com"}
        )
    assert r.status_code == 200
    spans = [s for s in cap.spans() if format(s.context.trace_id, "032x") == r.headers["x-trace-id"]]
    stage = alerts.current()
    assert stage is not None and stage.join(10)

    on_spans = {s.attributes.get(semconv.USER_ID) for s in spans}
    assert len(on_spans) == 1
    (hashed,) = on_spans
    assert isinstance(hashed, str) and hashed.startswith("uh_") and len(hashed) == 35
    labels = {p.attributes.get(semconv.USER_ID) for p in points(reader, "chatobs.cost.usd")}
    labels |= {p.attributes.get(semconv.USER_ID) for p in points(reader, "http.server.request.duration")}
    assert labels == {hashed}
    (alert,) = [a for a in webhook.received if a["type"] == "budget"]
    assert alert["subject"] == {"user": hashed} and alert["trace_id"] == r.headers["x-trace-id"]
    assert hashed in alert["message"] and "alice" not in str(alert)
