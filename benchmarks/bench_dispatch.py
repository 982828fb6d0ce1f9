"""Cost of a dead backend: request-path latency and CPU per chat turn with a healthy OTLP backend vs a dead one
(connection refused) vs no exporter, and memory growth through a long outage.

The healthy backend is the recording server in a separate process, so its work is not counted. CPU time is process
time (all threads: the request path plus chatobs's background pipeline and exporter threads).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import table

REPO = Path(__file__).resolve().parent.parent
N = int(os.environ.get("BENCH_N", "1000"))
OUTAGE_TURNS = int(os.environ.get("BENCH_OUTAGE_TURNS", "10000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))

_SERVER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from tests.recording_server import RecordingServer
srv = RecordingServer().__enter__()
print(srv.url, flush=True)
sys.stdin.read()
"""


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _measure(settings: dict[str, Any], n: int) -> dict[str, float]:
    import chatobs
    from tests.dispatch.turns import chat_turn

    chatobs.init(export_interval_ms=100, **settings)
    for i in range(100):
        chat_turn(n=i)
    walls = []
    cpu0 = time.process_time()
    for i in range(n):
        t0 = time.perf_counter()
        chat_turn(n=i)
        walls.append(time.perf_counter() - t0)
    cpu = (time.process_time() - cpu0) / n
    chatobs.shutdown(timeout_s=1)
    walls.sort()
    return {"p50_ms": walls[len(walls) // 2] * 1e3, "p99_ms": walls[int(len(walls) * 0.99)] * 1e3, "cpu_ms": cpu * 1e3}


def _outage_memory(dead_url: str, turns: int) -> dict[str, float]:
    import chatobs
    from chatobs.runtime.wiring import get_runtime
    from tests.dispatch.turns import chat_turn

    chatobs.init(
        exporters="otlp", otlp_traces_endpoint=dead_url, export_interval_ms=100, otlp_timeout_s=1, export_max_retry_s=1
    )
    rt = get_runtime()
    assert rt is not None
    # Fill the exporter queue first: memory up to its bound is by design; growth past it would be the leak.
    bound = rt.settings.export_queue_size
    for i in range(5000):
        chat_turn(n=i)
        if rt.channels[0].pending() >= bound and i >= 1000:
            break
    dropped0 = sum(n for (w, _), n in rt.channels[0].stats.dropped.items() if w == "otlp")
    base = _rss()
    peak_pending = 0
    for i in range(turns):
        chat_turn(n=i)
        if i % 500 == 0:
            peak_pending = max(peak_pending, rt.channels[0].pending())
    grown = _rss() - base
    dropped = sum(n for (w, _), n in rt.channels[0].stats.dropped.items() if w == "otlp") - dropped0
    chatobs.shutdown(timeout_s=1)
    return {
        "turns": turns,
        "rss_growth_mb": grown / 1e6,
        "peak_pending": peak_pending,
        "queue_bound": rt.settings.export_queue_size,
        "dropped": dropped,
    }


def main() -> dict[str, Any]:
    sys.path[:0] = [str(REPO), str(REPO / "src")]
    import logging

    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)  # the dead backend's export errors are expected
    logging.getLogger("chatobs").setLevel(logging.CRITICAL)
    from tests.recording_server import closed_port

    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(REPO)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        healthy_url = server.stdout.readline().strip()  # type: ignore[union-attr]
        dead_url = f"http://127.0.0.1:{closed_port()}/v1/traces"
        variants = {
            "no exporter": {"exporters": "none"},
            "healthy OTLP": {"exporters": "otlp", "otlp_traces_endpoint": f"{healthy_url}/v1/traces"},
            "dead OTLP": {
                "exporters": "otlp",
                "otlp_traces_endpoint": dead_url,
                "otlp_timeout_s": 1,
                "export_max_retry_s": 1,
            },
        }
        samples: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
        for _ in range(ROUNDS):  # interleaved, so machine load drifts hit every variant alike
            for name, settings in variants.items():
                samples[name].append(_measure(settings, N))
        med = {name: {k: statistics.median(s[k] for s in runs) for k in runs[0]} for name, runs in samples.items()}
        outage = _outage_memory(dead_url, OUTAGE_TURNS)
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(5)
    healthy = med["healthy OTLP"]
    rows = [
        (
            name,
            f"{m['p50_ms']:.3f}",
            f"{m['p99_ms']:.3f}",
            f"{m['cpu_ms']:.3f}",
            f"{m['p50_ms'] / healthy['p50_ms']:.2f}",
        )
        for name, m in med.items()
    ]
    table(rows, ("variant", "p50 ms/turn", "p99 ms/turn", "CPU ms/turn", "p50 vs healthy"))
    print(
        f"\noutage: {outage['turns']} turns against a dead backend: RSS grew {outage['rss_growth_mb']:.2f} MB, "
        f"exporter queue peaked at {outage['peak_pending']} (bound {outage['queue_bound']}), {outage['dropped']} spans dropped and counted during the run ({3 * outage['turns']} offered)"
    )
    return {
        "turns_per_variant": N,
        "variants": med,
        "dead_vs_healthy_p50_ratio": med["dead OTLP"]["p50_ms"] / healthy["p50_ms"],
        "dead_vs_healthy_cpu_ratio": med["dead OTLP"]["cpu_ms"] / healthy["cpu_ms"],
        "outage": outage,
    }


if __name__ == "__main__":
    main()
