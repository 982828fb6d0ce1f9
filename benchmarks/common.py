"""Shared measuring helpers: CPU time per operation, interleaved runs, medians."""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any


def table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=False)))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)))


def cpu_per_op(fn: Callable[[], Any], n: int) -> float:
    """CPU seconds per call of ``fn`` (process time: all threads, so background work counts too)."""
    gc.collect()
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n


def async_cpu_per_op(make: Callable[[], Awaitable[Any]], n: int, loop: asyncio.AbstractEventLoop) -> float:
    async def run() -> None:
        for _ in range(n):
            await make()

    gc.collect()
    start = time.process_time()
    loop.run_until_complete(run())
    return (time.process_time() - start) / n


def interleaved(measures: dict[str, Callable[[], float]], rounds: int = 5) -> dict[str, float]:
    """Median of ``rounds`` alternating measurements of each variant, so drift hits all variants alike."""
    samples: dict[str, list[float]] = {k: [] for k in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            samples[name].append(measure())
    return {k: statistics.median(v) for k, v in samples.items()}
