"""chatobs's tracer, on whatever provider is global now (the app's or the one ``init()`` installed)."""

from __future__ import annotations

from opentelemetry import trace

from .. import __version__

_tracer_cache: tuple[object, trace.Tracer] | None = None


def get_tracer() -> trace.Tracer:
    """chatobs's tracer on the current global provider (cached: creating a tracer costs more than a span)."""
    global _tracer_cache
    provider = trace.get_tracer_provider()
    cached = _tracer_cache
    if cached is not None and cached[0] is provider:
        return cached[1]
    tracer = provider.get_tracer("chatobs", __version__)
    _tracer_cache = (provider, tracer)
    return tracer
