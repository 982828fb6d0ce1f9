"""Counters of the pipeline's own health: what was queued, exported, dropped (by exporter and reason), and why.

Plain integers bumped under the GIL on the hot path; read by ``chatobs doctor``, the rate-limited warning and the
metrics stage.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class PipelineStats:
    received: int = 0
    dropped: Counter[tuple[str, str]] = field(default_factory=Counter)  # (where, reason) -> spans
    exported: Counter[str] = field(default_factory=Counter)  # exporter -> spans
    failed: Counter[str] = field(default_factory=Counter)  # exporter -> failed export calls
    events: Counter[str] = field(default_factory=Counter)  # other things worth counting (masking failures, ...)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def drop(self, where: str, reason: str, n: int = 1) -> None:
        with self._lock:
            self.dropped[(where, reason)] += n

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.events[what] += n

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "received": self.received,
                "dropped": {f"{w}/{r}": n for (w, r), n in self.dropped.items()},
                "exported": dict(self.exported),
                "failed": dict(self.failed),
                "events": dict(self.events),
            }


STATS = PipelineStats()
