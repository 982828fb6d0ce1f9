"""Keeping chatobs's background threads from holding the app's GIL for long stretches.

The pipeline and export threads run in the app's process. While one of them runs Python, the app's event loop,
woken by epoll, waits for the GIL -- up to the interpreter's switch interval (5 ms) before it may even ask for it.
So background work is done in short slices of CPU time, and between slices the thread sleeps briefly: the GIL is free
for a moment, and a thread already waiting for it (the loop) takes it. ``time.sleep(0)`` is not enough: it drops the
GIL and takes it back before the waiting thread has woken up, and (CPython's switch counter having moved) the waiter
then waits a whole switch interval again. ``sys.setswitchinterval`` is not touched: it would change the app's own
threads too.
"""

from __future__ import annotations

import time
from collections.abc import Callable

SLICE_S = 0.001  # background CPU between two pauses
PAUSE_S = 0.0002  # long enough for a waiting thread to wake up and take the GIL
BUSY_S = 0.0005  # a pause that overran by this much found the GIL (or the CPU) taken: the app is busy
MAX_PAUSE_S = 0.008
DEFER_BACKLOG = 512  # queued spans above which background work stops deferring to a busy app (memory, delay)


class Pacer:
    """Call :meth:`pace` between small units of work; it pauses once ``slice_s`` of this thread's CPU time was
    spent since the last pause. Thread CPU time, not wall time: waiting (for the masking worker, the network) holds
    no GIL and needs no pause."""

    __slots__ = ("slice_s", "pause_s", "may_defer", "_pause", "_mark", "pauses")

    def __init__(self, slice_s: float = SLICE_S, pause_s: float = PAUSE_S,
                 may_defer: Callable[[], bool] | None = None) -> None:
        self.slice_s = slice_s
        self.pause_s = pause_s
        # While this says yes (little backlog), pauses grow when the app is busy: background work waits for the
        # app's quiet moments instead of taking every other GIL turn.
        self.may_defer = may_defer
        self._pause = pause_s
        self._mark = time.thread_time()
        self.pauses = 0

    @property
    def enabled(self) -> bool:
        return self.slice_s != float("inf")

    def reset(self) -> None:
        self._mark = time.thread_time()

    def pace(self) -> None:
        if time.thread_time() - self._mark >= self.slice_s:
            self.pause()

    def pause(self) -> None:
        pause = self._pause
        started = time.perf_counter()
        time.sleep(pause)
        overran = time.perf_counter() - started - pause
        self.pauses += 1
        if self.may_defer is not None and overran > BUSY_S and self.may_defer():
            self._pause = min(pause * 2, MAX_PAUSE_S)
        else:
            self._pause = self.pause_s
        self._mark = time.thread_time()


def unpaced() -> Pacer:
    """A pacer that never pauses (whole batches at once): the behaviour before pacing, for benchmarks."""
    return Pacer(slice_s=float("inf"))


class ChunkSizer:
    """How many items (or units of weight) to hand to one call so it stays within a slice: a running estimate of
    CPU per unit."""

    __slots__ = ("target_s", "floor", "ceiling", "_per_item")

    def __init__(self, target_s: float = SLICE_S, floor: int = 1, ceiling: int = 256, first_guess_s: float = 0.0002) -> None:
        self.target_s = target_s
        self.floor = floor
        self.ceiling = ceiling
        self._per_item = first_guess_s

    def size(self) -> int:
        n = int(self.target_s / self._per_item) if self._per_item > 0 else self.ceiling
        return max(self.floor, min(self.ceiling, n))

    def observe(self, items: int, cpu_s: float) -> None:
        if items > 0:
            # Smoothed, so one slow call (a cache miss, a page fault) does not collapse the next chunks to one item.
            self._per_item = 0.7 * self._per_item + 0.3 * (cpu_s / items)
