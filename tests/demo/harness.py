"""Run the demo for real (``python -m demo_app`` in a subprocess, its fake LLM and MCP server as its own children)
and read what it traced from the local store it writes."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import PYTHON, REPO, new_agent_dir, stop_agents, subprocess_env

SLOW_TOOL_SECONDS = 0.4
SLOW_TOOL_MS = 200
STARTUP_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_traceparent() -> tuple[str, str]:
    """(trace ID, traceparent) as the chat page makes them."""
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    return trace_id, f"00-{trace_id}-{span_id}-01"


class Demo:
    """A running ``python -m demo_app``; ``stop()`` sends SIGINT like Ctrl-C and returns the exit code."""

    def __init__(self, framework: str, workdir: Path, *extra_args: str, **extra_env: str) -> None:
        self.framework = framework
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = workdir / f"traces-{framework}.db"
        self.log = workdir / f"demo-{framework}.log"
        # The demo's own agent (it outlives single tests): its log holds the alerts, stop() ends it.
        self.agent_dir = Path(new_agent_dir())
        env = subprocess_env(
            CHATOBS_AGENT_DIR=str(self.agent_dir),
            CHATOBS_LOCAL_DB=str(self.db),
            CHATOBS_EXPORT_INTERVAL_MS="50",
            CHATOBS_SLOW_TOOL_MS=str(SLOW_TOOL_MS),
            DEMO_SLOW_TOOL_SECONDS=str(SLOW_TOOL_SECONDS),
        )
        for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DEMO_MODEL"):
            env.pop(key, None)  # a developer's real key must not turn the tests into paid calls
        env.update(extra_env)
        self._logf = self.log.open("wb")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "demo_app", "--framework", framework, "--port", str(self.port), *extra_args],
            cwd=str(workdir),
            env=env,
            stdout=self._logf,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"demo exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if self.client.get("/healthz").status_code == 200:
                    # /healthz answers as soon as the server listens; the tools come up with the app.
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"demo not ready after {STARTUP_TIMEOUT_S}s:\n{self.output()}")

    def output(self) -> str:
        if not self._logf.closed:
            self._logf.flush()
        return self.log.read_text(errors="replace")

    def agent_log(self) -> str:
        """What the demo's agent logged (alerts run there, with every other pipeline stage)."""
        return "".join(p.read_text(errors="replace") for p in sorted(self.agent_dir.glob("*.log")))

    def chat(
        self,
        message: str = "",
        *,
        user: str = "alice",
        conversation_id: str | None = None,
        traceparent: str | None = None,
        **fields: Any,
    ) -> httpx.Response:
        body = {"message": message, **fields}
        if conversation_id:
            body["conversation_id"] = conversation_id
        headers = {"x-user-id": user}
        if traceparent:
            headers["traceparent"] = traceparent
        return self.client.post("/api/chat", json=body, headers=headers)

    def stream(
        self, message: str = "", *, user: str = "alice", conversation_id: str | None = None, **fields: Any
    ) -> tuple[httpx.Response, list[dict[str, Any]]]:
        body = {"message": message, **fields}
        if conversation_id:
            body["conversation_id"] = conversation_id
        events: list[dict[str, Any]] = []
        with self.client.stream("POST", "/api/chat/stream", json=body, headers={"x-user-id": user}) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
        return response, events

    def stop(self, sig: int = signal.SIGINT, timeout: float = 45) -> int | None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._logf.close()
        stop_agents(str(self.agent_dir))
        return self.proc.returncode

    # --- the local store ---------------------------------------------------------------------------------------
    def spans(self, trace_id: str) -> list[dict[str, Any]]:
        if not self.db.exists():
            return []
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        conn.row_factory = sqlite3.Row
        try:
            rows = conn.execute("SELECT * FROM spans WHERE trace_id = ? ORDER BY start_ns", (trace_id,)).fetchall()
        except sqlite3.OperationalError:
            return []  # schema not created yet
        finally:
            conn.close()
        out = []
        for row in rows:
            span = dict(row)
            span["attributes"] = json.loads(span["attributes"] or "{}")
            span["resource"] = json.loads(span["resource"] or "{}")
            out.append(span)
        return out

    def wait_spans(
        self, trace_id: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 15
    ) -> list[dict[str, Any]]:
        """The trace's spans once ``done(spans)`` holds (spans arrive in batches, from two processes)."""
        deadline = time.monotonic() + timeout
        spans: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            spans = self.spans(trace_id)
            if spans and done(spans):
                return spans
            time.sleep(0.1)
        names = [(s["name"], s["resource"].get("service.name"), s["span_type"], s["tool_name"]) for s in spans]
        raise AssertionError(
            f"trace {trace_id} incomplete after {timeout}s: {names}\n--- demo output:\n{self.output()[-3000:]}"
        )


def by_type(spans: list[dict[str, Any]], span_type: str) -> list[dict[str, Any]]:
    return [s for s in spans if s.get("span_type") == span_type]


def service(span: dict[str, Any]) -> str | None:
    return span["resource"].get("service.name")


def root(spans: list[dict[str, Any]]) -> dict[str, Any]:
    roots = [s for s in spans if s["attributes"].get("chatobs.request")]
    assert len(roots) == 1, [s["name"] for s in roots]
    return roots[0]


def ancestors(span: dict[str, Any], spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    index = {s["span_id"]: s for s in spans}
    chain, parent = [], span.get("parent_id")
    while parent in index:
        chain.append(index[parent])
        parent = index[parent].get("parent_id")
    return chain


__all__ = ["REPO", "Demo", "ancestors", "by_type", "free_port", "new_traceparent", "root", "service"]
