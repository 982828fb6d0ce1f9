"""Numbers from span attributes, which may arrive as strings or be missing: ``None`` for absent, bool or unreadable."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["as_float", "as_int", "percentile"]


def as_int(value: Any) -> int | None:
    if type(value) is int:  # the common case first (the local store and metrics read this per span)
        return value
    if value is None or isinstance(value, bool):  # True is an int to Python, never a count
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def as_float(value: Any) -> float | None:
    if type(value) is float:
        return value
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    k = max(0, math.ceil(q / 100 * len(sorted_values)) - 1)
    return sorted_values[min(k, len(sorted_values) - 1)]
