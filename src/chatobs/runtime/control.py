"""The running chatobs, seen from the app: ``chatobs.flush()`` and ``chatobs.stats()``.

Thin on purpose: each forwards to whatever runs the pipeline (today the in-process runtime), so the app's calls stay
the same when that moves.
"""

from __future__ import annotations

import math
from typing import Any

from ..core.guard import log_limited

__all__ = ["flush", "stats"]


def flush(timeout_s: float = 5.0) -> bool:
    """Export every span chatobs has received so far, waiting at most ``timeout_s`` seconds (e.g. before a benchmark
    reads a backend, or at the end of a batch job). Returns whether everything went out in time; ``True`` when chatobs
    is not running (nothing is held). Raises ``ValueError`` for a ``timeout_s`` that is not a number >= 0."""
    number = isinstance(timeout_s, (int, float)) and not isinstance(timeout_s, bool)
    if not number or not math.isfinite(timeout_s) or timeout_s < 0:
        raise ValueError(f"chatobs.flush(timeout_s=...): expected a number of seconds >= 0, got {timeout_s!r}")
    from .wiring import get_runtime

    runtime = get_runtime()
    if runtime is None:
        return True
    try:
        return bool(runtime.force_flush(float(timeout_s)))
    except Exception as exc:  # noqa: BLE001 - a failed flush is reported, never raised into the app
        log_limited("flush", "chatobs: flush failed: %s: %s", type(exc).__name__, exc)
        return False


def stats() -> dict[str, Any]:
    """The pipeline's own counters as a plain dict (a copy): ``received``, ``dropped`` (``"where/reason"`` -> spans),
    ``exported`` and ``failed`` (per exporter) and ``events`` (masking failures, early sampling decisions, ...)."""
    from ..core.stats import STATS

    return STATS.snapshot()
