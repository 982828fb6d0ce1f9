"""Thread pools keep the turn: ``ThreadPoolExecutor.submit`` (and so ``loop.run_in_executor``) runs the function in a
copy of the submitter's context, as ``asyncio.to_thread`` and ``anyio.to_thread`` already do.

Hand-written rather than OpenTelemetry's threading instrumentation because that one also patches every
``Thread.start``: a long-lived thread first started during a request (a worker, an exporter) would then run under
that request's span for its whole life.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...config import Settings

_original_submit: Callable[..., Future[Any]] | None = None


def instrument(settings: Settings) -> bool:
    global _original_submit
    if _original_submit is not None:
        return True
    original = ThreadPoolExecutor.submit

    @functools.wraps(original)  # type: ignore[arg-type]
    def submit(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return original(self, contextvars.copy_context().run, fn, *args, **kwargs)

    _original_submit = original
    ThreadPoolExecutor.submit = submit  # type: ignore[method-assign,assignment]
    return True


def uninstrument() -> None:
    global _original_submit
    if _original_submit is not None:
        ThreadPoolExecutor.submit = _original_submit  # type: ignore[method-assign]
        _original_submit = None
