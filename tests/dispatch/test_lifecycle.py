"""Process lifecycle: a normal exit delivers (atexit), a stalled backend cannot hold exit past CHATOBS_SHUTDOWN_TIMEOUT,
a forked child (gunicorn --preload style) exports on its own, and memory stays flat through a long outage."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

import chatobs
from chatobs.core.stats import STATS
from tests.conftest import REPO, subprocess_env
from tests.recording_server import RecordingServer, closed_port

from .turns import chat_turn

pytestmark = pytest.mark.timeout(90)

_APP = """
import sys
sys.path.insert(0, {repo!r})
import chatobs, chatobs.runtime.wiring
from tests.dispatch.turns import chat_turn
chatobs.init()  # everything from the environment; the default export interval (1 s) never fires before exit
for i in range(3):
    chat_turn(n=i)
{tail}
"""


def _run(env: dict[str, str], tail: str = "") -> tuple[float, subprocess.CompletedProcess[str]]:
    code = _APP.format(repo=str(REPO), tail=textwrap.dedent(tail))
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False)
    return time.monotonic() - started, out


def test_normal_exit_delivers_everything() -> None:
    with RecordingServer() as srv:
        env = subprocess_env(
            CHATOBS_EXPORTERS="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url, CHATOBS_EXPORT_INTERVAL_MS="5000"
        )
        _, out = _run(env)
        assert out.returncode == 0, out.stderr
        assert len(srv.otlp_spans()) == 9  # 3 turns x 3 spans, flushed by the atexit hook


def test_stalled_backend_does_not_hold_exit() -> None:
    with RecordingServer("stall", stall_s=30) as srv:
        env = subprocess_env(
            CHATOBS_EXPORTERS="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=srv.url,
            CHATOBS_SHUTDOWN_TIMEOUT="1",
            OTEL_EXPORTER_OTLP_TIMEOUT="20",
            CHATOBS_EXPORT_INTERVAL_MS="5000",
        )
        baseline, _ = _run(subprocess_env(CHATOBS_EXPORTERS="none"))
        took, out = _run(env)
        assert out.returncode == 0, out.stderr
        # Exit waits about the 1 s shutdown budget (plus noise on a busy machine), not the 20 s request timeout.
        assert took - baseline < 10.0, (took, baseline)
        assert "did not deliver everything" in out.stderr


_FORK = """
import os, sys
sys.path.insert(0, {repo!r})
import chatobs, chatobs.runtime.wiring
from tests.dispatch.turns import chat_turn
chatobs.init(export_interval_ms=20)
chat_turn(conversation_id="parent")
chatobs.runtime.wiring.get_runtime().force_flush(5)
pid = os.fork()
if pid == 0:
    chat_turn(conversation_id="child-%d" % os.getpid())
    ok = chatobs.runtime.wiring.get_runtime().force_flush(5)
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
print("child-exit", os.waitstatus_to_exitcode(status))
"""


def test_forked_child_exports() -> None:
    with RecordingServer() as srv:
        env = subprocess_env(CHATOBS_EXPORTERS="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=srv.url)
        out = subprocess.run(
            [sys.executable, "-c", _FORK.format(repo=str(REPO))],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        assert "child-exit 0" in out.stdout, out.stdout + out.stderr
        convs = {s["attributes"].get("gen_ai.conversation.id") for s in srv.otlp_spans()}
        assert "parent" in convs
        assert any(c and c.startswith("child-") for c in convs), convs  # the child's own worker thread exported


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_memory_flat_through_outage() -> None:
    """2,500 chat turns (7,500 spans, 14x the queue bounds) against a dead backend: the queues stay at their bounds,
    memory does not grow, every span beyond them is counted as dropped. (The full 10,000-turn outage runs in
    benchmarks/bench_dispatch.py, which reports the growth; here it would take too long on a shared machine.)"""
    port = closed_port()
    rt = chatobs.init(
        exporters="otlp",
        otlp_traces_endpoint=f"http://127.0.0.1:{port}/v1/traces",
        export_interval_ms=50,
        export_queue_size=512,
        max_queue_size=1024,
        otlp_timeout_s=0.2,
        export_max_retry_s=0.2,
    )
    assert rt is not None
    channel = rt.channels[0]
    dropped_before = sum(n for (w, _), n in STATS.dropped.items() if w in ("otlp", "pipeline"))
    for i in range(500):  # warm up: fill the queues, let allocator pools settle
        chat_turn(n=i)
    # Resident memory, not tracemalloc: tracing every allocation would make 10,000 turns take minutes.
    base = _rss()
    peak_pending = 0
    for i in range(2000):
        chat_turn(n=i)
        if i % 250 == 0:
            peak_pending = max(peak_pending, channel.pending())
    grown = _rss() - base
    assert peak_pending <= 512
    assert grown < 4 * 1024 * 1024, f"memory grew by {grown / 1e6:.1f} MB"
    dropped = sum(n for (w, _), n in STATS.dropped.items() if w in ("otlp", "pipeline")) - dropped_before
    assert dropped >= 7500 - 512 - 1024 - 256 * 2  # everything that could not be held was counted
    chatobs.shutdown(timeout_s=0.5)
