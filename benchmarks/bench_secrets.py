"""Secret scrubbing on a labelled corpus: leaks, false positives and CPU per text.

    python -m benchmarks secrets          # figures into benchmarks/results.json
    python -m benchmarks.bench_secrets    # the same, printed only

The corpus (`benchmarks/secrets_dataset.py`) is generated from a seed: texts that hold a credential in the providers'
exact formats (AWS key pairs in prose and config, GitHub, Slack, Stripe, Google, OpenAI, Anthropic, JWTs, PEM blocks,
passwords in URLs, assignments in Python/YAML/JSON/.env/shell, bearer headers) and look-alikes that hold none (prose
about passwords and keys, code that names them, config placeholders, UUIDs, hashes, git SHAs, base64 images, URLs
without credentials, long identifiers). A leak is a credential still in the output; a false positive is a look-alike
changed at all. Targets: 0 and 0.

CPU: ``time.thread_time`` of the uncached scrub (the gate, then the rules) per text, best of several rounds; the
pipeline caches short texts on top of this (a chat history resends them every call).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from benchmarks.secrets_dataset import baits, leaks  # noqa: E402 - importable after the sys.path lines only
from chatobs.processing import secrets  # noqa: E402


def evaluate() -> dict[str, Any]:
    leak_set, bait_set = leaks(), baits()
    leaked: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for kind, text, values in leak_set:
        kinds[kind] += 1
        out = secrets._scrub(text)
        leaked[kind] += any(v in out for v in values)
    false_pos: Counter[str] = Counter()
    bait_kinds: Counter[str] = Counter()
    examples = []
    for kind, text in bait_set:
        bait_kinds[kind] += 1
        out = secrets._scrub(text)
        if out != text:
            false_pos[kind] += 1
            examples.append(out[:120])
    print(f"leaks: {sum(leaked.values())} of {len(leak_set)} texts with a credential")
    for kind in kinds:
        print(f"  {kind:22} {leaked[kind]}/{kinds[kind]}")
    print(f"false positives: {sum(false_pos.values())} of {len(bait_set)} look-alikes")
    for kind in bait_kinds:
        print(f"  {kind:22} {false_pos[kind]}/{bait_kinds[kind]}")
    for e in examples:
        print(f"    changed: {e!r}")
    return {
        "leak_texts": len(leak_set),
        "leaks": sum(leaked.values()),
        "bait_texts": len(bait_set),
        "false_positives": sum(false_pos.values()),
        "leaks_by_kind": dict(leaked),
        "false_positives_by_kind": dict(false_pos),
    }


def cost(rounds: int) -> dict[str, float]:
    leak_texts = [t for _, t, _ in leaks()]
    bait_texts = [t for _, t in baits()]
    chat = [  # what most content values are: prose with no candidate at all
        "Hi! Can you help me plan a three-day trip to Lisbon in May? We like food and museums.",
        "Sure. Day one: Alfama and the castle in the morning, then a tram ride and dinner in Bairro Alto.",
        "What is the difference between a list and a tuple in Python, and when should I use each one?",
        "My order 4417 never arrived and the tracking page has not changed since Monday, please check.",
    ] * 10
    secrets._rules()  # built once per process, on first use
    out: dict[str, float] = {}
    for label, texts in (
        ("chat prose, no candidate", chat),
        ("look-alikes", bait_texts),
        ("texts with a credential", leak_texts),
    ):
        best = float("inf")
        for _ in range(rounds):
            start = time.thread_time()
            for t in texts:
                secrets._scrub(t)
            best = min(best, (time.thread_time() - start) / len(texts))
        skipped = sum(1 for t in texts if not secrets.might_hold_secret(t))
        chars = sum(len(t) for t in texts) / len(texts)
        print(f"  {label:26} {best * 1e6:7.1f} µs/text  (mean {chars:.0f} chars; gate skips {skipped}/{len(texts)})")
        out[label] = round(best * 1e6, 2)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    rounds = int(os.environ.get("BENCH_ROUNDS", "30"))
    t0 = time.perf_counter()
    secrets._rules()
    print(f"rule set built in {(time.perf_counter() - t0) * 1000:.0f} ms (detect-secrets imported, once per process)")
    results = evaluate()
    print(f"\nCPU per text, uncached (best of {rounds}):")
    results["us_per_text"] = cost(rounds)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
