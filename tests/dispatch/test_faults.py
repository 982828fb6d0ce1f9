"""Fault matrix: each exporter against a closed port, a genuinely stalled server, 500s, garbage answers and a TLS
certificate it does not trust -- next to a healthy exporter that must receive everything on time, while the request
path carries on. Every span offered to the broken exporter is accounted for (exported or dropped with a reason)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

import chatobs
from chatobs.core.stats import STATS
from tests.recording_server import RecordingServer, closed_port

from .turns import chat_turn

pytestmark = pytest.mark.timeout(60)

FAULTS = ["closed_port", "stall", "error_500", "garbage", "tls"]
KINDS = ["otlp", "langfuse", "opik"]
TURNS = 3
FAST = dict(
    export_interval_ms=20, export_timeout_s=0.5, export_max_retry_s=0.5, otlp_timeout_s=0.5, langfuse_timeout_s=0.5
)


def _settings(kind: str, url: str) -> dict[str, Any]:
    if kind == "otlp":
        return {"otlp_traces_endpoint": f"{url}/v1/traces"}
    if kind == "langfuse":
        return {"langfuse_public_key": "pk-lf-1", "langfuse_secret_key": "sk-lf-1", "langfuse_base_url": url}
    return {"opik_url": f"{url}/api", "opik_project_name": "p"}


def _received(kind: str, srv: RecordingServer) -> int:
    if kind == "otlp":
        return len(srv.otlp_spans("/v1/traces"))
    if kind == "langfuse":
        return len(srv.otlp_spans("/api/public/otel/v1/traces"))
    return len(srv.opik_spans())


@contextmanager
def _broken(fault: str) -> Iterator[str]:
    if fault == "closed_port":
        yield f"http://127.0.0.1:{closed_port()}"
        return
    mode = {"stall": "stall", "error_500": "error", "garbage": "garbage", "tls": "ok"}[fault]
    with RecordingServer(mode, stall_s=10.0, tls=fault == "tls") as srv:
        yield srv.url


def _snapshot(name: str) -> tuple[int, int]:
    dropped = sum(n for (where, _), n in STATS.dropped.items() if where == name)
    return STATS.exported.get(name, 0), dropped


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("kind", KINDS)
def test_broken_backend_isolated(kind: str, fault: str) -> None:
    healthy_kind = "langfuse" if kind == "otlp" else "otlp"
    with ExitStack() as stack:
        broken_url = stack.enter_context(_broken(fault))
        healthy = stack.enter_context(RecordingServer())
        before = _snapshot(kind)
        timeouts = dict(FAST)
        if fault == "stall":
            # The broken exporter is stuck for the whole test: only a separate worker lets the healthy one deliver.
            timeouts.update(export_timeout_s=8.0, otlp_timeout_s=8.0, langfuse_timeout_s=8.0)
        rt = chatobs.init(
            exporters=f"{kind},{healthy_kind}",
            **_settings(kind, broken_url),
            **_settings(healthy_kind, healthy.url),
            **timeouts,
        )
        assert rt is not None
        slowest = 0.0
        for i in range(TURNS):
            t0 = time.perf_counter()
            chat_turn(n=i)
            slowest = max(slowest, time.perf_counter() - t0)
        # The request path never waits for a backend (the stalled one answers after 10 s).
        assert slowest < 1.0
        assert healthy.wait_for(lambda s: _received(healthy_kind, s) >= 3 * TURNS, timeout=4), (
            "healthy exporter was held up"
        )
        started = time.monotonic()
        chatobs.shutdown(timeout_s=1.5)
        assert time.monotonic() - started < 3.0  # the total shutdown timeout holds whatever the broken backend does
        exported, dropped = (a - b for a, b in zip(_snapshot(kind), before, strict=False))
        assert exported + dropped == 3 * TURNS, (exported, dropped, STATS.snapshot())
        if fault != "garbage":  # a 200 with a body the client ignores counts as delivered; all else must not
            assert exported == 0 and dropped == 3 * TURNS
            assert STATS.failed.get(kind, 0) > 0


def test_retry_with_backoff_then_delivered() -> None:
    """A backend answering 500 for a while gets the batch once it recovers (no loss, failures counted)."""
    with RecordingServer("error") as srv:
        before_exported, before_dropped = _snapshot("otlp")
        before_failed = STATS.failed.get("otlp", 0)
        chatobs.init(
            exporters="otlp",
            otlp_traces_endpoint=f"{srv.url}/v1/traces",
            export_interval_ms=20,
            otlp_timeout_s=0.3,
            export_max_retry_s=10,
        )
        chat_turn()
        assert srv.wait_for(lambda s: len(s.rejected) >= 1, timeout=5)
        srv.mode = "ok"
        assert srv.wait_for(lambda s: len(s.otlp_spans()) >= 3, timeout=8)
        chatobs.shutdown(timeout_s=2)
        exported, dropped = (a - b for a, b in zip(_snapshot("otlp"), (before_exported, before_dropped), strict=False))
        assert (exported, dropped) == (3, 0)
        assert STATS.failed.get("otlp", 0) > before_failed


def test_status_shows_counts_and_last_error() -> None:
    port = closed_port()
    rt = chatobs.init(exporters="otlp", otlp_traces_endpoint=f"http://127.0.0.1:{port}/v1/traces", **FAST)
    assert rt is not None
    chat_turn()
    rt.force_flush(3)
    [status] = rt.pipeline.sink.status()  # type: ignore[attr-defined]
    assert status["name"] == "otlp" and status["degraded"] is True
    assert status["dropped"].get("export_failed", 0) >= 3
    assert status["last_error"]
