"""How the CLI prints: tables for people, JSON for scripts, progress on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO


# --- output helpers -------------------------------------------------------------------------------------------------
def out() -> TextIO:
    return sys.stdout


def print_json(value: Any) -> None:
    json.dump(value, out(), indent=2, ensure_ascii=False, default=str)
    out().write("\n")


def fmt_time(ns: int | None) -> str:
    if not ns:
        return "-"
    return datetime.fromtimestamp(ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms >= 10000:
        return f"{ms / 1000:.1f}s"
    if ms >= 1000:
        return f"{ms / 1000:.2f}s"
    return f"{ms:.1f}ms" if ms < 100 else f"{ms:.0f}ms"


def fmt_cost(usd: float | None) -> str:
    if not usd:
        return "-"
    return f"${usd:.4f}" if usd < 1 else f"${usd:.2f}"


def fmt_int(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def clip(text: Any, width: int) -> str:
    s = "-" if text is None or text == "" else str(text)
    s = " ".join(s.split())  # one line per row, whatever the content
    return s if len(s) <= width else s[: max(1, width - 1)] + "…"


def table(
    rows: Sequence[Sequence[Any]], headers: Sequence[str], *, max_width: int = 40, right: Sequence[int] = ()
) -> str:
    """A plain aligned text table; cells are clipped to ``max_width`` and flattened to one line."""
    cells = [[clip(c, max_width) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(widths[i]) if i in right else v.ljust(widths[i]) for i, v in enumerate(values)]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def progress(message: str) -> None:
    # Only when someone is watching: scripts reading stderr get no noise.
    if sys.stderr.isatty():
        sys.stderr.write("\r" + message)
        sys.stderr.flush()


def progress_done() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\n")
