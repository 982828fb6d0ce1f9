"""Local trace store: the default exporter when no backend is configured.

Spans arrive here from the background pipeline (after sampling and masking), are written in batches to a SQLite file
(``CHATOBS_LOCAL_DB``), and are read back by the ``chatobs`` command and the viewer. Retention runs on the same
background thread, at most once a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ...core.guard import log_limited
from .feedback import feedback_row, is_feedback
from .rows import span_row
from .store import SCHEMA_VERSION, Store, StoreError

if TYPE_CHECKING:
    from ...config import Settings

__all__ = ["SCHEMA_VERSION", "LocalExporter", "Store", "StoreError", "build"]

logger = logging.getLogger("chatobs")


class LocalExporter(SpanExporter):
    def __init__(
        self,
        path: str | Path,
        *,
        retention_days: float = 7.0,
        max_mb: float = 500.0,
        prune_interval_s: float = 60.0,
    ) -> None:
        self.path = Path(path)
        self.store = Store(self.path)
        self.retention_days = retention_days
        self.max_mb = max_mb
        self.prune_interval_s = prune_interval_s
        self._next_prune = 0.0  # first export also prunes: a restarted app cleans up what aged out meanwhile
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            rows = [span_row(s) for s in spans if not is_feedback(s)]
            ratings = [feedback_row(s) for s in spans if is_feedback(s)]
            with self._lock:
                self.store.write(rows)
                self.store.write_feedback(ratings)
        except StoreError as exc:
            log_limited("local-store", "chatobs: local store unusable: %s", exc)
            return SpanExportResult.FAILURE
        except Exception as exc:  # noqa: BLE001 - the channel retries; the app never sees it
            log_limited(
                "local-store",
                "chatobs: writing to the local store %s failed: %s: %s",
                self.path,
                type(exc).__name__,
                exc,
            )
            return SpanExportResult.FAILURE
        self._maybe_prune()
        return SpanExportResult.SUCCESS

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + self.prune_interval_s
        try:
            with self._lock:
                removed = self.store.prune(retention_days=self.retention_days, max_mb=self.max_mb)
            if removed["traces"]:
                logger.debug(
                    "chatobs: local store retention removed %d traces (%d spans)", removed["traces"], removed["spans"]
                )
        except Exception as exc:  # noqa: BLE001
            log_limited("local-store-prune", "chatobs: local store retention failed: %s: %s", type(exc).__name__, exc)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export() call is committed before it returns

    def shutdown(self) -> None:
        self.store.close()


def build(settings: Settings) -> SpanExporter:
    # Opening the file is left to the first export (background thread): init() stays cheap and fork-safe.
    return LocalExporter(settings.local_db, retention_days=settings.local_retention_days, max_mb=settings.local_max_mb)
