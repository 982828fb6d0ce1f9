"""The hand-off protocol between an app process and the agent: length-prefixed frames over a Unix stream socket.

A frame is ``!IB`` (payload length, frame type) followed by a ``marshal``-encoded payload of plain tuples, dicts
and primitives. ``marshal`` is the fastest stdlib encoder for such values (benchmarks/bench_handoff.py measures it
against ``pickle``) and, unlike ``pickle``, cannot run code; it can still crash the interpreter on hostile bytes,
which is why both ends only talk to a peer of the same user (``peer_uid``, checked with ``SO_PEERCRED``).

A span record is a tuple (see ``RECORD_FIELDS``); a record's resource is ``None`` when it is the connection's
resource (sent once, in the hello), else its attribute dict.
"""

from __future__ import annotations

import marshal
import socket
import struct
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

__all__ = [
    "ACK",
    "DROPS",
    "FLUSH",
    "FLUSH_ACK",
    "HELLO",
    "MAX_FRAME",
    "METRICS",
    "METRICS_REPLY",
    "PROTOCOL",
    "SPANS",
    "STATUS",
    "STATUS_REPLY",
    "FrameReader",
    "encode_frame",
    "peer_uid",
    "span_from_record",
    "span_record",
]

PROTOCOL = 1
HEADER = struct.Struct("!IB")
MAX_FRAME = 64 * 1024 * 1024  # a batch larger than this is a bug or an attack: the connection is closed

# Frame types. Client -> agent: HELLO, SPANS, FLUSH, STATUS, DROPS, METRICS. Agent -> client: the rest.
HELLO, SPANS, ACK, FLUSH, FLUSH_ACK, STATUS, STATUS_REPLY, DROPS, METRICS, METRICS_REPLY = range(1, 11)

RECORD_FIELDS = (
    "name",
    "trace_id",
    "span_id",
    "flags",
    "trace_state",
    "parent_span_id",
    "parent_remote",
    "kind",
    "start",
    "end",
    "attributes",
    "events",
    "links",
    "status_code",
    "status_description",
    "scope_name",
    "scope_version",
    "resource",
)
_KINDS = list(SpanKind)
_CODES = list(StatusCode)
# Enum ``.value`` lookups cost more than a dict lookup on this path.
_KIND_INDEX = {k: i for i, k in enumerate(_KINDS)}
_CODE_INDEX = {c: i for i, c in enumerate(_CODES)}


def encode_frame(kind: int, payload: Any) -> bytes:
    body = marshal.dumps(payload)
    return HEADER.pack(len(body), kind) + body


class FrameReader:
    """Accumulates bytes from a stream and yields whole ``(kind, payload)`` frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[int, Any]]:
        buf = self._buf
        buf += data
        while len(buf) >= HEADER.size:
            size, kind = HEADER.unpack_from(buf)
            if size > MAX_FRAME:
                raise ValueError(f"frame of {size} bytes exceeds the limit of {MAX_FRAME}")
            end = HEADER.size + size
            if len(buf) < end:
                return
            # Safe only because the peer is the same user (SO_PEERCRED): marshal trusts its input.
            payload = marshal.loads(bytes(buf[HEADER.size : end]))
            del buf[:end]
            yield kind, payload


def _plain(attrs: Any) -> dict[str, Any]:
    """The attribute dict without copying when it already is one (the SDK's ``BoundedAttributes`` wraps a dict)."""
    if type(attrs) is dict:
        return attrs
    inner = getattr(attrs, "_dict", None)
    if type(inner) is dict:
        return inner
    return dict(attrs or {})


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    raw = getattr(span, "_attributes", None)
    return _plain(raw if raw is not None else span.attributes)


def span_record(span: ReadableSpan, resource: Resource | None) -> tuple[Any, ...]:
    """One finished span as a tuple of primitives. ``resource`` is the connection's (sent in the hello)."""
    ctx = span.context
    parent = span.parent
    status = span.status
    scope = span.instrumentation_scope
    # The SDK's ``events``/``links`` properties copy their lists on every read; the stored sequences are final here.
    events = getattr(span, "_events", None) or ()
    links = getattr(span, "_links", None) or ()
    ts = ctx.trace_state
    res = span.resource
    return (
        span.name,
        ctx.trace_id,
        ctx.span_id,
        int(ctx.trace_flags),
        tuple(ts.items()) if ts else None,
        parent.span_id if parent is not None else 0,
        bool(parent.is_remote) if parent is not None else False,
        _KIND_INDEX[span.kind],
        span.start_time,
        span.end_time,
        _attributes(span),
        tuple((e.name, e.timestamp, _plain(e.attributes)) for e in events) if events else (),
        tuple(
            (ln.context.trace_id, ln.context.span_id, int(ln.context.trace_flags), _plain(ln.attributes))
            for ln in links
        )
        if links
        else (),
        _CODE_INDEX[status.status_code],
        status.description,
        scope.name if scope is not None else "",
        scope.version if scope is not None else None,
        None if res is resource or res is None else _plain(res.attributes),
    )


def span_from_record(rec: tuple[Any, ...], resource: Resource) -> ReadableSpan:
    """The agent side: a ``ReadableSpan`` equal to the one the app finished."""
    (
        name,
        trace_id,
        span_id,
        flags,
        trace_state,
        parent_id,
        parent_remote,
        kind,
        start,
        end,
        attrs,
        events,
        links,
        code,
        description,
        scope_name,
        scope_version,
        res,
    ) = rec
    state = TraceState(list(trace_state)) if trace_state else None
    ctx = SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(flags), trace_state=state)
    parent = (
        SpanContext(trace_id, parent_id, is_remote=parent_remote, trace_flags=TraceFlags(flags)) if parent_id else None
    )
    return ReadableSpan(
        name=name,
        context=ctx,
        parent=parent,
        resource=resource if res is None else Resource(res),
        attributes=attrs,
        events=tuple(Event(n, a, timestamp=t) for n, t, a in events),
        links=tuple(Link(SpanContext(t, s, is_remote=True, trace_flags=TraceFlags(f)), a) for t, s, f, a in links),
        kind=_KINDS[kind],
        status=Status(_CODES[code], description),
        start_time=start,
        end_time=end,
        instrumentation_scope=InstrumentationScope(scope_name, scope_version),
    )


def resource_attributes(resource: Resource | None) -> dict[str, Any]:
    return dict(resource.attributes) if resource is not None else {}


def peer_uid(sock: socket.socket) -> int:
    """The user ID of the process at the other end of a Unix socket (Linux ``SO_PEERCRED``)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def peer_pid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[0]


def as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def iter_records(spans: Iterable[ReadableSpan], resource: Resource | None) -> list[tuple[Any, ...]]:
    return [span_record(s, resource) for s in spans]
