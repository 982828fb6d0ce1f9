"""W3C Trace Context and Baggage extraction, stricter than OpenTelemetry's propagator where the spec demands it.

Differences from ``TraceContextTextMapPropagator`` that the W3C test suite checks: several ``traceparent`` headers
make the header invalid (a new trace starts); several ``tracestate`` headers are combined in order; a duplicated
``tracestate`` key drops every entry with that key; keys follow the current grammar (multi-tenant ``tenant@system``
keys whose tenant may start with a digit). Where the spec lets a vendor choose, chatobs keeps the valid
``tracestate`` entries and drops only the invalid ones (the W3C suite's strict level 2 instead discards the whole
header when one key has a bad vendor format -- see docs/middleware.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import CarrierT, Getter, default_getter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_HEX = frozenset("0123456789abcdef")
_OWS = " \t"
_KEY_RE = re.compile(
    r"^(?:[a-z][a-z0-9_\-*/]{0,255}"  # simple-key
    r"|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})$"  # multi-tenant-key
)
# value = 0*255(chr) nblk-chr ; chr = %x20 / nblk-chr ; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
_VALUE_RE = re.compile(r"^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$")
_MAX_MEMBERS = 32
_MAX_TRACESTATE_LEN = 8192  # defensive bound on what we parse at all

_baggage = W3CBaggagePropagator()


def _is_hex(s: str) -> bool:
    return all(c in _HEX for c in s)


def parse_traceparent(values: Sequence[str]) -> SpanContext | None:
    """The remote parent, or ``None`` when absent, duplicated or invalid (the caller then starts a new trace)."""
    if len(values) != 1:
        return None
    value = values[0].strip(_OWS)
    if len(value) < 55:
        return None
    version = value[0:2]
    if not _is_hex(version) or version == "ff":
        return None
    if version == "00":
        if len(value) != 55:
            return None
    elif len(value) > 55 and value[55] != "-":
        # A future version may append fields, but only after another dash.
        return None
    if value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    trace_id, span_id, flags = value[3:35], value[36:52], value[53:55]
    if not (_is_hex(trace_id) and _is_hex(span_id) and _is_hex(flags)):
        return None
    tid, sid = int(trace_id, 16), int(span_id, 16)
    if tid == 0 or sid == 0:
        return None
    return SpanContext(tid, sid, is_remote=True, trace_flags=TraceFlags(int(flags, 16)))


def parse_tracestate(values: Sequence[str]) -> TraceState:
    """Combined ``tracestate`` headers; invalid entries and duplicated keys dropped, the rest kept in order."""
    joined = ",".join(values)
    if not joined.strip(_OWS) or len(joined) > _MAX_TRACESTATE_LEN:
        return TraceState()
    entries: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for member in joined.split(","):
        member = member.strip(_OWS)
        if not member:
            continue  # empty list members are allowed
        key, sep, val = member.partition("=")
        if not sep or not _KEY_RE.match(key) or not _VALUE_RE.match(val):
            continue
        seen[key] = seen.get(key, 0) + 1
        entries.append((key, val))
    entries = [(k, v) for k, v in entries if seen[k] == 1]
    if len(entries) > _MAX_MEMBERS:
        return TraceState()
    return TraceState(entries)


def extract(traceparent: Sequence[str], tracestate: Sequence[str], baggage: Sequence[str]) -> Context:
    """An OTel context holding the remote parent (if valid) and the incoming baggage."""
    ctx = Context()
    parent = parse_traceparent(traceparent)
    if parent is not None:
        state = parse_tracestate(tracestate) if tracestate else TraceState()
        parent = SpanContext(parent.trace_id, parent.span_id, is_remote=True, trace_flags=parent.trace_flags, trace_state=state)
        ctx = trace.set_span_in_context(NonRecordingSpan(parent), ctx)
    if baggage:
        # Several baggage headers are one list (RFC 9110 field combination); OTel's propagator enforces the limits.
        ctx = _baggage.extract({"baggage": ",".join(baggage)}, context=ctx)
    return ctx


class StrictTraceContextPropagator(TraceContextTextMapPropagator):
    """OTel's W3C trace-context propagator with chatobs's stricter extraction (injection is OTel's).

    ``chatobs.init()`` installs it in place of OTel's in the global propagator, so frameworks that extract on their
    own (FastAPI's native telemetry, OTel's ASGI/WSGI instrumentation) apply the same rules as chatobs's middleware.
    """

    def extract(self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter) -> Context:
        if context is None:
            context = Context()
        traceparent = getter.get(carrier, "traceparent") or ()
        if isinstance(traceparent, str):
            traceparent = [traceparent]
        parent = parse_traceparent(list(traceparent))
        if parent is None:
            return context
        tracestate = getter.get(carrier, "tracestate") or ()
        if isinstance(tracestate, str):
            tracestate = [tracestate]
        state = parse_tracestate(list(tracestate)) if tracestate else TraceState()
        parent = SpanContext(parent.trace_id, parent.span_id, is_remote=True, trace_flags=parent.trace_flags, trace_state=state)
        return trace.set_span_in_context(NonRecordingSpan(parent), context)


def install_strict_propagator() -> bool:
    """Swap OTel's trace-context propagator for the strict one inside the global propagator; True if swapped."""
    from opentelemetry import propagate
    from opentelemetry.propagators.composite import CompositePropagator

    current = propagate.get_global_textmap()
    if not isinstance(current, CompositePropagator):
        return False
    members = list(getattr(current, "_propagators", ()))
    if not any(type(p) is TraceContextTextMapPropagator for p in members):
        return False
    swapped = [StrictTraceContextPropagator() if type(p) is TraceContextTextMapPropagator else p for p in members]
    propagate.set_global_textmap(CompositePropagator(swapped))
    return True
