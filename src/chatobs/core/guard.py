"""Never hurt the host app: every chatobs hook runs behind a guard that swallows and rate-limits its own failures."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

logger = logging.getLogger("chatobs")

F = TypeVar("F", bound=Callable[..., Any])

_WINDOW_S = 60.0
# One entry per kind: a fixed set of call sites, named per exporter, stage or rule type at most.
_last_logged: dict[str, float] = {}
_suppressed: dict[str, int] = {}
_lock = threading.Lock()


def log_limited(kind: str, message: str, *args: Any, level: int = logging.WARNING, exc_info: Any = None) -> None:
    """Log ``message`` at most once per minute per ``kind``; later repeats are counted and reported with the next one."""
    now = time.monotonic()
    with _lock:
        last = _last_logged.get(kind)
        if last is not None and now - last < _WINDOW_S:
            _suppressed[kind] = _suppressed.get(kind, 0) + 1
            return
        _last_logged[kind] = now
        skipped = _suppressed.pop(kind, 0)
    suffix = f" ({skipped} similar messages suppressed in the last minute)" if skipped else ""
    logger.log(level, message + suffix, *args, exc_info=exc_info)


def reset_log_limits() -> None:
    with _lock:
        _last_logged.clear()
        _suppressed.clear()


@contextmanager
def guard(kind: str) -> Iterator[None]:
    """Run a block of chatobs code; an exception is logged (rate-limited) and swallowed, never raised to the app."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the whole point is to catch everything chatobs might raise
        log_limited(
            kind,
            "chatobs: %s failed: %s: %s",
            kind,
            type(exc).__name__,
            exc,
            exc_info=logger.isEnabledFor(logging.DEBUG),
        )


def guarded(kind: str, default: Any = None) -> Callable[[F], F]:
    """Decorator form of :func:`guard`: returns ``default`` when the wrapped chatobs function fails."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001
                log_limited(
                    kind,
                    "chatobs: %s failed: %s: %s",
                    kind,
                    type(exc).__name__,
                    exc,
                    exc_info=logger.isEnabledFor(logging.DEBUG),
                )
                return default

        return wrapper  # type: ignore[return-value]

    return decorate
