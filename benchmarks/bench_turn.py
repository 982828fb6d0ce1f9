"""The headline figures: a full chat turn of the demo app, with chatobs and without, measured in one run.

Each turn is ``POST /api/chat`` with a new message carrying a name, an e-mail address and a phone number (so Presidio
runs in the agent every turn): the request span, two LLM calls through the real ``openai`` SDK to the fake provider
(its own process) and one MCP tool call to the demo tool server (its own process), content captured, PII masking and
export on (default local store, or OTLP to a receiver).

``BENCH_ROUNDS`` rounds (default 3); in each, the bare app (``CHATOBS_ENABLED=false``) and the chatobs app run at the
same time and their sequential turns are interleaved, so the machine's drift hits both alike. Every figure is the
median over the rounds with its spread (min..max):
- request-path CPU per turn: the app's event-loop thread (read from /proc per thread);
- app-process CPU (all threads), the agent's CPU, the tool server's, and all of them together;
- throughput at concurrency 16; streaming time to first byte; resident memory of the app and the agent;
- p99 latency with a dead OTLP backend against a healthy one (also an interleaved pair).
Turns the demo answers 502 (its LLM or tool call failed under load) are counted and shown, not fatal.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import table

REPO = Path(__file__).resolve().parent.parent
TURNS = int(os.environ.get("BENCH_TURNS", "200"))
CONCURRENT_TURNS = int(os.environ.get("BENCH_CONCURRENT_TURNS", "160"))
TICK = os.sysconf("SC_CLK_TCK")
# BENCH_PII_ECHO=1: the tool error echoes each message's PII (see message()).
ECHOED = os.environ.get("BENCH_PII_ECHO", "") == "1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_of_task(pid: int, tid: int) -> float:
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class DemoProcess:
    """``python -m demo_app`` in its own process group, with the fake LLM and the MCP tool server as its children."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DemoProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATOBS_", "OTEL_", "LANGFUSE_", "OPIK_"))}
        # Its own agent directory, so the agent this demo starts (detached: not its child) is found and counted.
        self.agent_dir = Path(tempfile.mkdtemp(prefix="co-bench-", dir="/tmp"))
        env.update(
            {"PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "CHATOBS_AGENT_DIR": str(self.agent_dir)}, **self.env
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "demo_app", "--port", str(self.port)],
            env=env,
            cwd=tempfile.mkdtemp(prefix="chatobs-bench-"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"demo exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("demo did not start")
        return self

    def agents(self) -> list[int]:
        pids = []
        for f in self.agent_dir.glob("*.pid"):
            try:
                pid = int(f.read_text())
                os.kill(pid, 0)
                pids.append(pid)
            except (OSError, ValueError):
                pass
        return pids

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> dict[str, float]:
        assert self.proc is not None
        pid = self.proc.pid
        loop = _cpu_of_task(pid, pid)
        total = sum(_cpu_of_task(pid, int(t.name)) for t in Path(f"/proc/{pid}/task").iterdir())
        masking = tools = 0.0
        for child in _children(pid):
            cmd = _cmdline(child)
            if "mcp_server" in cmd:
                tools += _process_cpu(child)
            elif "fake_llm" not in cmd:
                masking += _process_cpu(child)  # chatobs's masking worker, if it runs out of process
        agent = sum(_process_cpu(a) for a in self.agents())  # the chatobs agent (also the tool server's pipeline)
        return {"loop": loop, "total": total + masking + agent, "tools": tools, "agent": agent}

    def rss_mb(self) -> tuple[float, float]:
        """(the app process, chatobs's masking worker process) resident memory."""
        assert self.proc is not None
        worker = sum(
            _rss_mb(c)
            for c in _children(self.proc.pid)
            if "mcp_server" not in _cmdline(c) and "fake_llm" not in _cmdline(c)
        )
        return _rss_mb(self.proc.pid), worker + sum(_rss_mb(a) for a in self.agents())

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in self.agents():
            os.kill(pid, signal.SIGTERM)


_FIRST = ("Jane", "John", "Maria", "Ahmed", "Li", "Olga", "Pierre", "Aiko", "Carlos", "Fatima", "Sven", "Priya")
_LAST = ("Doe", "Smith", "Garcia", "Khan", "Wei", "Ivanova", "Dubois", "Tanaka", "Silva", "Haddad", "Berg", "Patel")


def message(i: int, echoed: bool = False) -> str:
    """A distinct message with a name, an e-mail address and a phone number: every turn gives the masker new text,
    so Presidio runs in the agent on every turn instead of answering from its caches.

    The PII comes before ``calculate``, so the tool gets a valid expression and its result carries none (a chat turn
    as users send them). ``echoed``: after it, so the demo's calculator rejects the whole text and its error message
    repeats it: every LLM and tool span then carries the PII in another wrapping (6 distinct texts per turn for
    Presidio instead of 1; docs/performance.md)."""
    first, last = _FIRST[i % len(_FIRST)], _LAST[(i // len(_FIRST)) % len(_LAST)]
    pii = (
        f"I am {first} {last} (ticket {i}), send it to {first.lower()}.{last.lower()}{i}@example.com "
        f"or call +1 415 555 {i % 10000:04d}"
    )
    expression = f"{i % 97 + 2}*{i % 89 + 3}"
    return f"calculate {expression} please, {pii}" if echoed else f"{pii}, and calculate {expression}"


_counter = itertools.count()


# base URL -> failed turns: a turn the demo answers 502 (its LLM or tool call failed, e.g. a timeout on an overloaded
# machine) is counted and shown beside the figures instead of ending the run.
FAILURES: dict[str, list[str]] = {}


def _checked(r: httpx.Response, base: str) -> str | None:
    """The conversation ID of a turn's response; a failed turn is counted (its error kept) and starts a new one."""
    if r.status_code >= 500:
        try:
            error = str(r.json().get("error"))
        except ValueError:
            error = r.text[:200]
        FAILURES.setdefault(base.rstrip("/"), []).append(f"{r.status_code}: {error}")
        return None
    r.raise_for_status()
    return str(r.json()["conversation_id"])


async def _conversation_turns(client: httpx.AsyncClient, user: str, turns: int, latencies: list[float]) -> None:
    conversation = None
    for i in range(turns):
        body: dict[str, Any] = {"message": message(next(_counter), ECHOED)}
        if conversation and i % 5:
            body["conversation_id"] = conversation
        started = time.perf_counter()
        r = await client.post("/api/chat", json=body, headers={"X-User-Id": user})
        latencies.append(time.perf_counter() - started)
        conversation = _checked(r, str(client.base_url))


async def _sequential(base: str, turns: int) -> list[float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        await _conversation_turns(client, "bench-user", turns, latencies)
    return latencies


async def _concurrent(base: str, turns: int, concurrency: int = 16) -> tuple[float, list[float]]:
    latencies: list[float] = []
    per_client = max(1, turns // concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        started = time.perf_counter()
        await asyncio.gather(
            *(_conversation_turns(client, f"user-{i}", per_client, latencies) for i in range(concurrency))
        )
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


async def _ttfb(base: str, n: int = 40) -> float:
    samples = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for _ in range(n):
            started = time.perf_counter()
            async with client.stream(
                "POST", "/api/chat/stream", json={"message": "hello there, how are you"}, headers={"X-User-Id": "ttfb"}
            ) as r:
                first = True
                async for _ in r.aiter_bytes():
                    if first:
                        samples.append(time.perf_counter() - started)
                        first = False
    return statistics.median(samples)


def _settle(demo: DemoProcess, quiet_s: float = 0.02, timeout_s: float = 60.0) -> None:
    """Wait until the app (and its masking worker or agent) use no more CPU while idle."""
    deadline = time.monotonic() + timeout_s
    last = demo.cpu()["total"]
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = demo.cpu()["total"]
        if now - last <= quiet_s:
            return
        last = now


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 100 else max(values)


async def _paired_turns(a: str, b: str, turns: int) -> tuple[list[float], list[float]]:
    """Sequential turns alternating between two apps (a, b, b, a, a, b, ...): the machine's drift -- other load, CPU
    frequency -- hits both alike, which per-process CPU over separate runs cannot promise on a shared machine."""
    lat: dict[str, list[float]] = {a: [], b: []}
    conv: dict[str, str | None] = {a: None, b: None}
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(turns):
            text = message(next(_counter), ECHOED)  # the same text for both apps: the same work for the masker
            for base in (a, b) if i % 2 == 0 else (b, a):
                body: dict[str, Any] = {"message": text}
                if conv[base] and i % 5:
                    body["conversation_id"] = conv[base]
                started = time.perf_counter()
                r = await client.post(f"{base}/api/chat", json=body, headers={"X-User-Id": "bench-user"})
                lat[base].append(time.perf_counter() - started)
                conv[base] = _checked(r, base)
    return lat[a], lat[b]


def measure_pair(
    env_a: dict[str, str], env_b: dict[str, str], flip: bool = False
) -> tuple[dict[str, float], dict[str, float]]:
    """Both apps up at once; CPU per turn from sequential turns interleaved between them, then throughput, TTFB and
    memory of each in turn (``flip``: b first, so the order within a round favours neither side over the rounds)."""
    with DemoProcess(env_a) as da, DemoProcess(env_b) as db:
        demos = (da, db)
        for d in demos:
            asyncio.run(_sequential(d.base, 20))  # warm up: imports, first connections, caches
        for d in demos:
            _settle(d)  # e.g. the agent loading Presidio: start-up, not per-turn cost
        before = [d.cpu() for d in demos]
        lat_a, lat_b = asyncio.run(_paired_turns(da.base, db.base, TURNS))
        loop_after = [d.cpu()["loop"] for d in demos]
        time.sleep(1.0)
        for d in demos:
            _settle(d)  # the agent masking and exporting this run's spans is part of the turns' cost
        after = [d.cpu() for d in demos]
        out = []
        for i, lat in enumerate((lat_a, lat_b)):
            app_before = before[i]["total"] - before[i]["agent"]
            app_after = after[i]["total"] - after[i]["agent"]
            out.append(
                {
                    "loop_ms": (loop_after[i] - before[i]["loop"]) / TURNS * 1000,
                    "app_ms": (app_after - app_before) / TURNS * 1000,
                    "agent_ms": (after[i]["agent"] - before[i]["agent"]) / TURNS * 1000,
                    "total_ms": (after[i]["total"] - before[i]["total"]) / TURNS * 1000,
                    "tools_ms": (after[i]["tools"] - before[i]["tools"]) / TURNS * 1000,
                    "p50_ms": statistics.median(lat) * 1000,
                    "p99_ms": _p99(lat) * 1000,
                }
            )
        order = (1, 0) if flip else (0, 1)
        for i in order:
            for d in demos:
                _settle(d)  # the other app's agent still masking its burst would take this one's CPU
            rate, conc_lat = asyncio.run(_concurrent(demos[i].base, CONCURRENT_TURNS))
            out[i].update(rate=rate, conc_p99_ms=_p99(conc_lat) * 1000)
        for i in order:
            for d in demos:
                _settle(d)
            out[i]["ttfb_ms"] = asyncio.run(_ttfb(demos[i].base)) * 1000
        time.sleep(1.0)
        for i, d in enumerate(demos):
            app_rss, worker_rss = d.rss_mb()
            out[i].update(rss_mb=app_rss + worker_rss, app_rss_mb=app_rss, worker_rss_mb=worker_rss)
            failed = FAILURES.pop(d.base, [])
            out[i]["failed_turns"] = float(len(failed))
            if failed:
                print(f"  {len(failed)} failed turns on {d.base}, first: {failed[0]}", flush=True)
    return out[0], out[1]


Pair = tuple[dict[str, float], dict[str, float]]


def _spread(values: list[float]) -> tuple[float, float, float]:
    """(median, min, max) over the rounds."""
    return statistics.median(values), min(values), max(values)


def _fmt(values: list[float], unit: str = "", digits: int = 2, sign: bool = False) -> str:
    med, lo, hi = _spread(values)
    f = f"{'+' if sign else ''}.{digits}f"
    if len(values) == 1:
        return f"{med:{f}}{unit}"
    return f"{med:{f}}{unit} ({lo:{f}}..{hi:{f}})"


def _col(runs: list[dict[str, float]], key: str, unit: str = " ms", digits: int = 2) -> str:
    return _fmt([r[key] for r in runs], unit, digits)


def _added(pairs: list[Pair], key: str) -> list[float]:
    return [o[key] - b[key] for b, o in pairs]


def _ratio(pairs: list[Pair], key: str) -> list[float]:
    return [o[key] / b[key] for b, o in pairs]


def _report(pairs: list[Pair], backends: list[Pair]) -> dict[str, Any]:
    bare, obs = [b for b, _ in pairs], [o for _, o in pairs]
    everything = [o["total_ms"] + o["tools_ms"] - b["total_ms"] - b["tools_ms"] for b, o in pairs]
    rows = [
        (
            "request-path CPU / turn (event-loop thread)",
            _col(bare, "loop_ms"),
            _col(obs, "loop_ms"),
            _fmt(_added(pairs, "loop_ms"), " ms", sign=True),
            "<= +0.4 ms",
        ),
        (
            "app process CPU / turn (all threads)",
            _col(bare, "app_ms"),
            _col(obs, "app_ms"),
            _fmt(_added(pairs, "app_ms"), " ms", sign=True),
            "<= +0.6 ms",
        ),
        ("the agent's CPU / turn (app's and tool server's spans)", "", _col(obs, "agent_ms"), "", ""),
        (
            "app + agent CPU / turn",
            _col(bare, "total_ms"),
            _col(obs, "total_ms"),
            _fmt(_added(pairs, "total_ms"), " ms", sign=True),
            "<= +1.5 ms",
        ),
        (
            "tool server CPU / turn",
            _col(bare, "tools_ms"),
            _col(obs, "tools_ms"),
            _fmt(_added(pairs, "tools_ms"), " ms", sign=True),
            "",
        ),
        ("every chatobs process (app + agent + tool server)", "", "", _fmt(everything, " ms", sign=True), ""),
        (
            "throughput, concurrency 16",
            _col(bare, "rate", "/s", 1),
            _col(obs, "rate", "/s", 1),
            _fmt(_ratio(pairs, "rate"), "x", 3),
            ">= 0.95x",
        ),
        (
            "streaming TTFB (median)",
            _col(bare, "ttfb_ms"),
            _col(obs, "ttfb_ms"),
            _fmt(_ratio(pairs, "ttfb_ms"), "x", 3),
            "<= 1.03x",
        ),
        (
            "app process memory",
            _col(bare, "app_rss_mb", " MB", 1),
            _col(obs, "app_rss_mb", " MB", 1),
            _fmt(_added(pairs, "app_rss_mb"), " MB", 1, sign=True),
            "<= +20 MB",
        ),
        ("agent memory", "", _col(obs, "worker_rss_mb", " MB", 1), "", "<= 150 MB"),
        (
            "turn latency p50, sequential",
            _col(bare, "p50_ms", " ms", 1),
            _col(obs, "p50_ms", " ms", 1),
            _fmt(_ratio(pairs, "p50_ms"), "x", 3),
            "",
        ),
        (
            "turn latency p99, sequential",
            _col(bare, "p99_ms", " ms", 1),
            _col(obs, "p99_ms", " ms", 1),
            _fmt(_ratio(pairs, "p99_ms"), "x", 3),
            "",
        ),
    ]
    print(f"\n{len(pairs)} interleaved rounds of {TURNS} turns; median (min..max) over the rounds")
    table(rows, ("figure (full chat turn)", "bare app", "with chatobs", "added / ratio", "target"))
    print()
    healthy, dead = [h for h, _ in backends], [d for _, d in backends]
    table(
        [
            (
                "p99, sequential",
                _col(healthy, "p99_ms", " ms", 1),
                _col(dead, "p99_ms", " ms", 1),
                _fmt(_ratio(backends, "p99_ms"), "x", 3),
            ),
            (
                "p99, concurrency 16",
                _col(healthy, "conc_p99_ms", " ms", 1),
                _col(dead, "conc_p99_ms", " ms", 1),
                _fmt(_ratio(backends, "conc_p99_ms"), "x", 3),
            ),
            (
                "throughput, concurrency 16",
                _col(healthy, "rate", "/s", 1),
                _col(dead, "rate", "/s", 1),
                _fmt(_ratio(backends, "rate"), "x", 3),
            ),
            ("failed turns", _col(healthy, "failed_turns", "", 0), _col(dead, "failed_turns", "", 0), ""),
            ("the agent's CPU / turn", _col(healthy, "agent_ms"), _col(dead, "agent_ms"), ""),
            ("agent memory", _col(healthy, "worker_rss_mb", " MB", 1), _col(dead, "worker_rss_mb", " MB", 1), ""),
        ],
        ("OTLP backend", "healthy", "dead (closed port)", "ratio (target <= 1.05x)"),
    )
    return {
        "turns": TURNS,
        "rounds": len(pairs),
        "pairs": pairs,
        "backends": backends,
        "request_path_cpu_added_ms": _spread(_added(pairs, "loop_ms")),
        "app_cpu_added_ms": _spread(_added(pairs, "app_ms")),
        "agent_cpu_ms": _spread([o["agent_ms"] for o in obs]),
        "total_cpu_added_ms": _spread(_added(pairs, "total_ms")),
        "all_chatobs_cpu_added_ms": _spread(everything),
        "tool_server_cpu_added_ms": _spread(_added(pairs, "tools_ms")),
        "throughput_ratio_c16": _spread(_ratio(pairs, "rate")),
        "ttfb_ratio": _spread(_ratio(pairs, "ttfb_ms")),
        "app_rss_added_mb": _spread(_added(pairs, "app_rss_mb")),
        "agent_rss_mb": _spread([o["worker_rss_mb"] for o in obs]),
        "dead_vs_healthy_p99_ratio": _spread(_ratio(backends, "p99_ms")),
        "dead_vs_healthy_conc_p99_ratio": _spread(_ratio(backends, "conc_p99_ms")),
    }


def main() -> dict[str, Any]:
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    common = {"DEMO_SLOW_TOOL_SECONDS": "0.1"}
    # BENCH_AGENT=inprocess measures the in-process pipeline (the design before the agent) for comparison;
    # BENCH_PII=ner also masks the names (a spaCy model in the agent); BENCH_BACKENDS=0 skips the dead-backend pair.
    mode = {"CHATOBS_AGENT": os.environ["BENCH_AGENT"]} if os.environ.get("BENCH_AGENT") else {}
    if os.environ.get("BENCH_PII"):
        mode["CHATOBS_PII"] = os.environ["BENCH_PII"]
    with_backends = os.environ.get("BENCH_BACKENDS", "1") != "0"
    from tests.recording_server import RecordingServer

    pairs: list[Pair] = []
    backends: list[Pair] = []
    for r in range(rounds):
        print(f"round {r + 1}/{rounds}", flush=True)
        pairs.append(measure_pair({**common, "CHATOBS_ENABLED": "false"}, {**common, **mode}, flip=bool(r % 2)))
        if with_backends:
            # A healthy and a dead OTLP backend (a live receiver, a closed port), both apps up at once, interleaved.
            otlp = {**common, **mode, "CHATOBS_EXPORTERS": "otlp"}
            with RecordingServer() as receiver:
                backends.append(
                    measure_pair(
                        {**otlp, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url},
                        {**otlp, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{_free_port()}"},
                        flip=bool(r % 2),
                    )
                )
    if not backends:
        none = {
            "p99_ms": 1.0,
            "conc_p99_ms": 1.0,
            "rate": 1.0,
            "agent_ms": 0.0,
            "worker_rss_mb": 0.0,
            "failed_turns": 0.0,
        }
        backends = [(none, none)]
    return _report(pairs, backends)


if __name__ == "__main__":
    main()
