"""Memory over a soak: 10,000 chat turns of the demo app over distinct conversations and users, with PII in every
message (so masking runs and every cache meets new texts), the bare app and the chatobs app side by side.

Each turn is ``POST /api/chat`` through the demo's real stack: two LLM calls through the real ``openai`` SDK to the
fake provider, one MCP tool call to the demo tool server, content captured, PII masking (Presidio, in chatobs's
masking worker) and the default local-store export. Every conversation gets ``BENCH_SOAK_TURNS_PER_CONVERSATION``
turns (its second turn resends the history, as a chat app does) and its own user.

Resident memory (VmRSS) of each process is sampled every ``BENCH_SOAK_SAMPLE_EVERY`` turns: the app process, the
masking worker (a chatobs process), the MCP tool server (chatobs runs inside it too) and its masking worker. The
figure is the growth after warm-up, per 1,000 turns, of the chatobs app minus that of the bare app (the demo keeps up
to 1,000 conversations of its own; that growth is the app's, not chatobs's).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

import httpx

from benchmarks.bench_turn import DemoProcess, _children, _cmdline, _rss_mb, _settle, message
from benchmarks.common import table

TURNS = int(os.environ.get("BENCH_SOAK_TURNS", "10000"))
WARMUP = int(os.environ.get("BENCH_SOAK_WARMUP", "2000"))
SAMPLE_EVERY = int(os.environ.get("BENCH_SOAK_SAMPLE_EVERY", "500"))
PER_CONVERSATION = int(os.environ.get("BENCH_SOAK_TURNS_PER_CONVERSATION", "2"))
CONCURRENCY = int(os.environ.get("BENCH_SOAK_CONCURRENCY", "4"))


def _processes(demo: DemoProcess) -> dict[str, int]:
    assert demo.proc is not None
    out = {"app": demo.proc.pid}
    for child in _children(demo.proc.pid):
        cmd = _cmdline(child)
        if "mcp_server" in cmd:
            out["tool_server"] = child
            for grandchild in _children(child):  # the tool server's own masking worker
                out["tool_server_masking_worker"] = grandchild
        elif "fake_llm" not in cmd:
            out["masking_worker"] = child
    for pid in demo.agents():  # the chatobs agent: detached, so not a child of the app
        out["agent"] = pid
    return out


def _rss(demo: DemoProcess) -> dict[str, float]:
    return {name: _rss_mb(pid) for name, pid in _processes(demo).items()}


async def _turns(client: httpx.AsyncClient, base: str, first: int, count: int) -> None:
    """Turns ``first .. first+count-1``; turn ``i`` belongs to conversation ``i // PER_CONVERSATION``."""
    conversations: dict[int, str] = {}
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one_conversation(conv: int, turns: list[int]) -> None:
        async with sem:
            for i in turns:
                body: dict[str, Any] = {"message": message(i, echoed=True)}
                if conv in conversations:
                    body["conversation_id"] = conversations[conv]
                r = await client.post(f"{base}/api/chat", json=body, headers={"X-User-Id": f"soak-user-{conv}"})
                r.raise_for_status()
                conversations[conv] = r.json()["conversation_id"]

    by_conv: dict[int, list[int]] = {}
    for i in range(first, first + count):
        by_conv.setdefault(i // PER_CONVERSATION, []).append(i)
    await asyncio.gather(*(one_conversation(c, t) for c, t in by_conv.items()))


async def _soak(demos: dict[str, DemoProcess], samples: dict[str, list[tuple[int, dict[str, float]]]]) -> None:
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=4 * CONCURRENCY)) as client:
        done = 0
        while done < TURNS:
            step = min(SAMPLE_EVERY, TURNS - done)
            # Both apps get the same turns at the same time: the machine's load hits both alike.
            await asyncio.gather(*(_turns(client, d.base, done, step) for d in demos.values()))
            done += step
            await asyncio.sleep(1.0)  # the pipeline catches up with this step's spans before the sample
            for name, d in demos.items():
                samples[name].append((done, _rss(d)))
            print(
                f"  {done} turns: "
                + "; ".join(
                    f"{name} " + " ".join(f"{p}={mb:.1f}" for p, mb in s[-1][1].items()) for name, s in samples.items()
                ),
                flush=True,
            )


def _growth(series: list[tuple[int, dict[str, float]]], process: str) -> tuple[float, float]:
    """(growth from warm-up to the end, least-squares slope after warm-up), both in MB per 1,000 turns."""
    after = [(n, s[process]) for n, s in series if n >= WARMUP and process in s]
    if len(after) < 2:
        return float("nan"), float("nan")
    (n0, r0), (n1, r1) = after[0], after[-1]
    slope = statistics.linear_regression([n for n, _ in after], [r for _, r in after]).slope
    return (r1 - r0) / (n1 - n0) * 1000, slope * 1000


def main() -> dict[str, Any]:
    common = {"DEMO_SLOW_TOOL_SECONDS": "0.1"}
    samples: dict[str, list[tuple[int, dict[str, float]]]] = {"bare": [], "chatobs": []}
    started = time.monotonic()
    with DemoProcess({**common, "CHATOBS_ENABLED": "false"}) as bare, DemoProcess(common) as obs:
        demos = {"bare": bare, "chatobs": obs}
        asyncio.run(_turns(httpx.AsyncClient(timeout=120), bare.base, -50, 20))  # imports, first connections
        asyncio.run(_turns(httpx.AsyncClient(timeout=120), obs.base, -50, 20))
        _settle(obs)  # the masking worker loading Presidio is start-up, not growth
        for name, d in demos.items():
            samples[name].append((0, _rss(d)))
        asyncio.run(_soak(demos, samples))
    elapsed = time.monotonic() - started

    results: dict[str, Any] = {
        "turns": TURNS,
        "warmup_turns": WARMUP,
        "turns_per_conversation": PER_CONVERSATION,
        "elapsed_s": round(elapsed, 1),
        "samples": samples,
        "growth_mb_per_1000_turns": {},
    }
    rows = []
    for process in ("app", "masking_worker", "tool_server", "tool_server_masking_worker", "agent"):
        g_bare = _growth(samples["bare"], process)
        g_obs = _growth(samples["chatobs"], process)
        start_obs = next((s[process] for n, s in samples["chatobs"] if n >= WARMUP and process in s), float("nan"))
        end_obs = samples["chatobs"][-1][1].get(process, float("nan"))
        added = g_obs[0] - g_bare[0] if process in samples["bare"][-1][1] else g_obs[0]
        results["growth_mb_per_1000_turns"][process] = {
            "bare": g_bare[0],
            "chatobs": g_obs[0],
            "chatobs_slope": g_obs[1],
            "added": added,
        }
        rows.append(
            (
                process,
                f"{g_bare[0]:+.2f}" if process in samples["bare"][-1][1] else "-",
                f"{g_obs[0]:+.2f} (slope {g_obs[1]:+.2f})",
                f"{added:+.2f}",
                f"{start_obs:.1f} -> {end_obs:.1f} MB",
            )
        )
    print()
    table(
        rows,
        (
            f"RSS growth per 1,000 turns after {WARMUP} turns",
            "bare app",
            "with chatobs",
            "added by chatobs",
            "chatobs RSS warm-up -> end",
        ),
    )
    return results


if __name__ == "__main__":
    main()
