"""One bounded queue worked off in batches by one daemon thread: the shape of the pipeline, each export channel and
the alert sinks.

``put`` is the hot path (the request path or the pipeline thread): a length check and a deque append, never a lock
and never a wait. A full queue drops the item and counts it. The worker wakes when a batch is full or every
``interval_s``; ``wait_idle`` is what flushes wait on; a forked child (gunicorn --preload) starts a fresh queue and
thread. Hand-written rather than ``queue.Queue``: that takes a lock per item on the request path and has no batch
wake-up, and ``concurrent.futures`` has neither a bound nor drop-and-count.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from .fork import restart_after_fork
from .guard import log_limited
from .stats import STATS, PipelineStats

T = TypeVar("T")

__all__ = ["WorkQueue"]


class WorkQueue(Generic[T]):
    """Bounded queue + worker thread calling ``handle(batch)``; ``where`` names its drop counters (``STATS``)."""

    def __init__(
        self,
        where: str,
        handle: Callable[[list[T]], None],
        *,
        maxsize: int,
        batch_size: int = 256,
        interval_s: float = 1.0,
        thread_name: str | None = None,
        count_closed: bool = True,
        after_fork: Callable[[], None] | None = None,
        stats: PipelineStats = STATS,
    ) -> None:
        self.where = where
        self.maxsize = maxsize
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.stats = stats
        self._handle = handle
        self._thread_name = thread_name or f"chatobs-{where}"
        self._count_closed = count_closed  # drops after close(): counted as "shutdown", or silently refused
        self._after_fork_hook = after_fork
        self.closed = False
        self._start()
        # A weak reference: a queue that was closed and dropped is neither kept alive nor restarted in a child.
        restart_after_fork(self)

    def _start(self) -> None:
        self._items: deque[T] = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._busy = False
        self._stopping = False
        self.stopped = threading.Event()  # set by stop(): handlers waiting out a backoff end it early
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        # The child inherits the parent's items (the parent works them off) but not its thread.
        if self.closed:
            return
        if self._after_fork_hook is not None:
            self._after_fork_hook()
        self._start()

    # --- producers --------------------------------------------------------------------------------------------------
    def put(self, item: T) -> bool:
        items = self._items
        if len(items) >= self.maxsize or self.closed:
            if not self.closed:
                self.stats.drop(self.where, "queue_full")
            elif self._count_closed:
                self.stats.drop(self.where, "shutdown")
            return False
        items.append(item)
        if len(items) >= self.batch_size:
            self._wake.set()
        return True

    def put_all(self, items: Iterable[T]) -> int:
        """Queue each of ``items`` (those past the bound are dropped and counted); how many were queued."""
        return sum(1 for item in items if self.put(item))

    def wake(self) -> None:
        self._wake.set()

    def __len__(self) -> int:
        return len(self._items)

    def take_all(self) -> int:
        """Give up on everything still queued (it will not be handled); how many items that was."""
        n = 0
        while True:
            try:
                self._items.popleft()
            except IndexError:
                return n
            n += 1

    # --- worker -----------------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            with self._idle:
                self._busy = True
            try:
                self._drain()
            finally:
                with self._idle:
                    self._busy = False
                    self._idle.notify_all()
            if self._stopping and not self._items:
                return

    def _drain(self) -> None:
        items = self._items
        while items:
            batch: list[T] = []
            try:
                while len(batch) < self.batch_size:
                    batch.append(items.popleft())
            except IndexError:
                pass
            try:
                self._handle(batch)
            except Exception as exc:  # noqa: BLE001 - the worker must outlive any handler
                log_limited(f"{self.where}-error", "chatobs: %s failed: %s: %s", self.where, type(exc).__name__, exc)

    # --- flush and stop ---------------------------------------------------------------------------------------------
    def wait_idle(self, deadline: float) -> bool:
        """Wake the worker and wait (until ``deadline``, monotonic) for it to have handled everything queued."""
        self._wake.set()
        with self._idle:
            while self._items or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.05))
                self._wake.set()
        return True

    def close(self) -> None:
        """Refuse new items; the worker ends once it has handled what is queued (or ``take_all`` took it)."""
        self.closed = True
        self._stopping = True
        self.stopped.set()
        self._wake.set()

    def stop(self, timeout_s: float) -> bool:
        """Close, give the worker ``timeout_s`` to work off the queue, and wait (at most a second) for it to end."""
        self.close()
        deadline = time.monotonic() + timeout_s
        done = self.wait_idle(deadline)
        self._thread.join(max(0.0, min(deadline - time.monotonic(), 1.0)))
        return done
