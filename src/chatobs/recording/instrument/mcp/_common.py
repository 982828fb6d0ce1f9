"""What the mcp 1.x and 2.x adapters share: the settings in force, server targets, identity hand-over, result marks."""

from __future__ import annotations

import contextvars
import os
import re
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.trace import Span, Status, StatusCode

from ....core import semconv
from ....core.chat_scope import ChatScope, context_with_scope, current, identity_attributes, scope_from_baggage
from ....core.guard import log_limited
from ....core.json_text import to_json
from ...light_spans import LightSpan, records_content

if TYPE_CHECKING:
    from ....config import Settings

# Tool arguments/results are opt-in; this cap bounds the request-path cost of serialising them (the pipeline cuts
# again to CHATOBS_MAX_ATTRIBUTE_LENGTH after masking).
IO_MAX_CHARS = 32768
_COMMAND_MAX_CHARS = 256
_SECRET_FLAG = re.compile(r"(key|token|secret|passw|auth|credential)", re.IGNORECASE)
_BAGGAGE = W3CBaggagePropagator()


@dataclass
class State:
    settings: Settings | None = None
    flavour: str = ""  # "v2" (enrich the SDK's spans) | "v1" (create spans); "" until patched
    pending: bool = False  # waiting for the app to import mcp
    undo: list[Callable[[], None]] = field(default_factory=list)


STATE = State()


def patch(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    """Replace ``owner.name`` by ``make(original)``; ``uninstrument`` puts the original back."""
    own = isinstance(owner, type) and name in owner.__dict__
    original = owner.__dict__[name] if own else getattr(owner, name)
    wrapper = make(original)
    wrapper.__wrapped__ = original
    wrapper._chatobs = True
    setattr(owner, name, wrapper)
    STATE.undo.append(
        lambda: setattr(owner, name, original) if own or not isinstance(owner, type) else delattr(owner, name)
    )


def is_patched(owner: Any, name: str) -> bool:
    return bool(
        getattr(owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None), "_chatobs", False)
    )


# --- where the server is ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Target:
    """How a client reaches an MCP server, as span attributes."""

    label: str
    transport: str | None = None  # network.transport: "pipe" (stdio) or "tcp" (HTTP)
    address: str | None = None
    port: int | None = None
    command: str | None = None

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if self.transport:
            attrs[semconv.NETWORK_TRANSPORT] = self.transport
        if self.address:
            attrs[semconv.SERVER_ADDRESS] = self.address
        if self.port:
            attrs[semconv.SERVER_PORT] = self.port
        if self.transport == "tcp":
            attrs[semconv.NETWORK_PROTOCOL_NAME] = "http"
        if self.command:
            attrs[semconv.MCP_SERVER_COMMAND] = self.command
        return attrs


def target_from_url(url: str) -> Target:
    parts = urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    try:
        port = parts.port or default_port
    except ValueError:
        port = None
    host = parts.hostname or ""
    # The label never carries userinfo or the query (tokens live there).
    return Target(label=f"{host}:{port}" if port else host, transport="tcp", address=host or None, port=port)


def command_line(command: str, args: list[str] | tuple[str, ...] | None) -> str:
    """``command args`` with the values of secret-looking flags hidden, e.g. ``--api-key ***``."""
    shown = [os.path.basename(command)]
    hide_next = False
    for arg in args or ():
        arg = str(arg)
        if hide_next:
            shown.append("***")
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if flag.startswith("-") and _SECRET_FLAG.search(flag):
            if eq:
                shown.append(f"{flag}=***")
            else:
                shown.append(arg)
                hide_next = True
            continue
        shown.append(arg)
    return " ".join(shown)[:_COMMAND_MAX_CHARS]


def target_from_stdio(command: str, args: list[str] | tuple[str, ...] | None) -> Target:
    line = command_line(command, args)
    return Target(label=line, transport="pipe", command=line)


def describe_server(server: Any) -> Target | None:
    """A ``Target`` for what a client was given: a URL, ``StdioServerParameters`` or an in-process server."""
    if isinstance(server, str):
        return target_from_url(server)
    command = getattr(server, "command", None)
    if isinstance(command, str):
        return target_from_stdio(command, getattr(server, "args", None))
    name = getattr(server, "name", None)
    if isinstance(name, str):
        return Target(label=name)
    return None


# The transport a session is about to use, noted when the transport opens (in the task that then builds the session):
# how a bare ClientSession over stdio_client/streamable HTTP learns which server it talks to.
_opening: contextvars.ContextVar[Target | None] = contextvars.ContextVar("chatobs_mcp_opening", default=None)


def take_opening_target() -> Target | None:
    target = _opening.get()
    if target is not None:
        _opening.set(None)
    return target


def _make_process_start(original: Any) -> Any:
    async def _create_platform_compatible_process(command: str, args: list[str], *rest: Any, **kwargs: Any) -> Any:
        try:
            _opening.set(target_from_stdio(command, args))
        except Exception as exc:  # noqa: BLE001
            warn("stdio target", exc)
        return await original(command, args, *rest, **kwargs)

    return _create_platform_compatible_process


def _make_http_transport_init(original: Any) -> Any:
    def __init__(self: Any, url: str, *args: Any, **kwargs: Any) -> None:
        original(self, url, *args, **kwargs)
        try:
            _opening.set(target_from_url(str(url)))
        except Exception as exc:  # noqa: BLE001
            warn("http target", exc)

    return __init__


def patch_transports() -> None:
    """Note the target when the SDK's stdio or streamable-HTTP client transport opens (both mcp versions)."""
    try:
        from mcp.client import stdio

        if hasattr(stdio, "_create_platform_compatible_process"):
            patch(stdio, "_create_platform_compatible_process", _make_process_start)
    except ImportError:
        pass
    try:
        from mcp.client import streamable_http

        if hasattr(streamable_http, "StreamableHTTPTransport"):
            patch(streamable_http.StreamableHTTPTransport, "__init__", _make_http_transport_init)
    except ImportError:
        pass


# --- identity across the process boundary ----------------------------------------------------------------------------
def ensure_baggage(meta: MutableMapping[str, Any]) -> None:
    """Make sure the request's ``_meta`` carries the caller's identity even when the app's propagators leave
    baggage out (``OTEL_PROPAGATORS=tracecontext``): the MCP server needs it to know whom it serves."""
    settings = STATE.settings
    if settings is None or not settings.propagate_identity or "baggage" in meta:
        return
    if otel_baggage.get_all():
        _BAGGAGE.inject(meta)


# A chatobs client says so in the request's _meta, and the server marks its span: one of the two spans of a tool call
# counts it (pipeline.spans.owns_tool_call), whichever process sees them. "chatobs/" is a valid, unreserved prefix.
CLIENT_MARK = "chatobs/client"


def mark_traced_call(meta: MutableMapping[str, Any]) -> None:
    """Tell the server that this ``tools/call`` is traced (and counted) by a chatobs client."""
    meta[CLIENT_MARK] = "1"


def caller_attributes(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """``chatobs.mcp.caller.traced`` for a server span whose request a chatobs client marked."""
    return {semconv.MCP_CALLER_TRACED: True} if meta and meta.get(CLIENT_MARK) == "1" else {}


def inject_meta(meta: MutableMapping[str, Any]) -> None:
    """``traceparent``/``tracestate``/``baggage`` of the current context into ``meta`` (mcp 1.x client)."""
    propagate.inject(meta)
    ensure_baggage(meta)


def server_context(
    meta: Mapping[str, Any] | None, *, with_parent: bool = True
) -> tuple[otel_context.Context, ChatScope | None, otel_context.Context | None]:
    """The context a server handler should run in: the current one plus the caller's baggage and chat scope from
    ``meta``. With ``with_parent`` also the extracted remote parent (mcp 1.x; 2.x's SDK extracts that itself)."""
    ctx = otel_context.get_current()
    if not meta:
        return ctx, current(ctx), None
    extracted: otel_context.Context | None = None
    try:
        if with_parent:
            extracted = propagate.extract(meta)
            incoming = otel_baggage.get_all(extracted)
            if not incoming and "baggage" in meta:
                incoming = otel_baggage.get_all(_BAGGAGE.extract(meta))
        else:
            incoming = otel_baggage.get_all(_BAGGAGE.extract(meta)) if "baggage" in meta else {}
    except Exception:  # noqa: BLE001 - a malformed carrier is the caller's problem, not a reason to fail the tool
        return ctx, current(ctx), None
    for key, value in incoming.items():
        ctx = otel_baggage.set_baggage(key, value, ctx)
    s = current(ctx) or scope_from_baggage(ctx)
    if s is not None:
        # The identity keys are in the baggage already (copied above), so only the scope is added.
        ctx = context_with_scope(s, ctx, propagate_identity=False)
    return ctx, s, extracted


def stamp_identity(span: Span, s: ChatScope | None) -> None:
    """Identity on a span the scope processor could not stamp at its start (no trace context in the request)."""
    attrs_now = getattr(span, "attributes", None) or {}
    if s is not None and semconv.GEN_AI_CONVERSATION_ID not in attrs_now and semconv.USER_ID not in attrs_now:
        attrs = identity_attributes(s)
        if attrs:
            span.set_attributes(attrs)


# --- results -----------------------------------------------------------------------------------------------------------
def io_text(value: Any) -> str | None:
    """Tool arguments or a result as recorded: core.json_text's JSON (pydantic models as their fields), cut to
    ``IO_MAX_CHARS``; ``None`` (not recorded) for what no JSON encoder takes, e.g. a circular structure, rather than
    a repr that readers would take for JSON."""
    try:
        return to_json(value)[:IO_MAX_CHARS]
    except (TypeError, ValueError, RecursionError):
        return None


def capture_io(span: Span | None = None) -> bool:
    """Record tool arguments/results? Opted in, and not in a trace head sampling dropped (light spans keep none)."""
    settings = STATE.settings
    if not (settings and settings.capture_tool_io):
        return False
    return type(span) is not LightSpan if span is not None else records_content()


def tool_result(span: Span, result: Mapping[str, Any]) -> None:
    """Marks from a ``tools/call`` result (wire form, camelCase): tool error and, if opted in, the result."""
    if result.get("isError") is True:
        span.set_attribute(semconv.ERROR_TYPE, "tool_error")
        text = _first_text(result)
        span.set_status(Status(StatusCode.ERROR, text[:200] if text else "tool returned isError=true"))
    if capture_io(span):
        shown = {k: v for k, v in result.items() if k in ("content", "structuredContent", "isError")}
        recorded = io_text(shown)
        if recorded is not None:
            span.set_attribute(semconv.GEN_AI_TOOL_CALL_RESULT, recorded)


def _first_text(result: Mapping[str, Any]) -> str:
    for block in result.get("content") or ():
        if isinstance(block, Mapping) and block.get("type") == "text":
            return str(block.get("text", ""))
    return ""


def mark_slow(span: Span, start_ns: int | None, end_ns: int | None = None) -> None:
    settings = STATE.settings
    if settings is None or not start_ns:
        return
    duration_ms = ((end_ns or time.time_ns()) - start_ns) / 1e6
    if duration_ms > settings.slow_tool_ms:
        span.set_attribute(semconv.SLOW, True)


def mark_failure(span: Any, cancelled: BaseException | None) -> None:
    """``error.type`` for a call that ended by an exception the SDK recorded without a type (a timeout) or by a
    cancellation, which OpenTelemetry does not record at all (the caller gave up: ``asyncio.wait_for``, a closed
    request)."""
    attrs = getattr(span, "attributes", None) or {}
    if semconv.ERROR_TYPE in attrs:
        return
    if cancelled is not None:
        span.set_attribute(semconv.ERROR_TYPE, "cancelled")
        span.set_status(Status(StatusCode.ERROR, "cancelled"))
        return
    if span.status.status_code is StatusCode.ERROR:
        for event in reversed(getattr(span, "events", ()) or ()):
            if event.name == "exception" and event.attributes:
                kind = event.attributes.get(semconv.EXCEPTION_TYPE)
                if kind:
                    span.set_attribute(semconv.ERROR_TYPE, str(kind).rsplit(".", 1)[-1])
                    return


def tool_attributes(name: Any, arguments: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
        semconv.OBSERVATION_TYPE: "tool",
    }
    if isinstance(name, str):
        attrs[semconv.GEN_AI_TOOL_NAME] = name
    text = io_text(arguments) if capture_io() and arguments is not None else None
    if text is not None:
        attrs[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] = text
    return attrs


def method_attributes(method: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Per-method attributes of an MCP request span (both sides, both SDK versions)."""
    params = params or {}
    if method == "tools/call":
        return tool_attributes(params.get("name"), params.get("arguments"))
    attrs: dict[str, Any] = {semconv.OBSERVATION_TYPE: "mcp"}
    if method == "resources/read" and isinstance(params.get("uri"), str):
        attrs[semconv.MCP_RESOURCE_URI] = params["uri"]
    elif method == "prompts/get" and isinstance(params.get("name"), str):
        attrs[semconv.GEN_AI_PROMPT_NAME] = params["name"]
    return attrs


def warn(kind: str, exc: BaseException) -> None:
    log_limited(f"mcp-{kind}", "chatobs: MCP %s failed: %s: %s", kind, type(exc).__name__, exc)
