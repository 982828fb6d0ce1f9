"""mcp 1.x: the SDK makes no spans, so chatobs makes them, following the OTel MCP semantic conventions.

- Client (``BaseSession.send_request`` of a ``ClientSession``): a CLIENT span ``{mcp.method.name} {target}`` per request,
  and ``traceparent``/``tracestate``/``baggage`` written into ``params._meta`` -- also when the request had no params
  or no ``_meta`` at all (the request is handed to the SDK behind a thin proxy whose ``model_dump`` adds them).
- Server (``Server._handle_request``): a SERVER span parented to the caller's span from ``params._meta``, the caller's
  baggage and chat scope attached while the handler runs, tool errors from the response it sends.
- Which server a session talks to: remembered from the transport being opened in the same task (``stdio_client``
  spawning the process, ``StreamableHTTPTransport`` created with its URL) and from the ``initialize`` result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ....core import semconv
from ...light_spans import start_span
from ._common import (
    STATE,
    Target,
    caller_attributes,
    capture_io,
    inject_meta,
    mark_failure,
    mark_slow,
    mark_traced_call,
    method_attributes,
    patch,
    patch_transports,
    server_context,
    stamp_identity,
    take_opening_target,
    tool_result,
    warn,
)


def supported() -> bool:
    try:
        from mcp.client.session import ClientSession  # noqa: F401
        from mcp.server.lowlevel.server import Server
        from mcp.shared.session import BaseSession
    except ImportError:
        return False
    return hasattr(BaseSession, "send_request") and hasattr(Server, "_handle_request")


def _tracer() -> trace.Tracer:
    from ....runtime.wiring import get_tracer

    return get_tracer()


# --- client ------------------------------------------------------------------------------------------------------------
class _WithMeta:
    """The request as the SDK sees it, except that ``model_dump`` adds the trace context to ``params._meta``,
    creating ``params`` and ``_meta`` when the request had none."""

    __slots__ = ("_carrier", "_request")

    def __init__(self, request: Any, carrier: Mapping[str, str]) -> None:
        self._request = request
        self._carrier = carrier

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # the SDK names the request class in its timeout message
        return type(self._request)

    def model_dump(self, *args: Any, **kwargs: Any) -> Any:
        data = self._request.model_dump(*args, **kwargs)
        params = data.get("params")
        if not isinstance(params, dict):
            params = data["params"] = {}
        meta = params.get("_meta")
        if not isinstance(meta, dict):
            meta = params["_meta"] = {}
        for key, value in self._carrier.items():
            meta.setdefault(key, value)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


def _plain_params(params: Any) -> dict[str, Any]:
    """Just the fields chatobs reads (no full dump on the request path)."""
    if params is None:
        return {}
    out: dict[str, Any] = {}
    for key in ("name", "arguments", "uri"):
        value = getattr(params, key, None)
        if value is not None:
            out[key] = value if key != "uri" else str(value)
    return out


def _span_name(method: str, params: Mapping[str, Any]) -> str:
    target = params.get("name") if method in ("tools/call", "prompts/get") else None
    return f"{method} {target}" if isinstance(target, str) else method


def _start_client_span(session: Any, request: Any) -> tuple[Span, Any]:
    inner = getattr(request, "root", request)
    method = inner.method
    params = _plain_params(getattr(inner, "params", None))
    attrs: dict[str, Any] = {
        semconv.MCP_METHOD_NAME: method,
        semconv.JSONRPC_REQUEST_ID: str(getattr(session, "_request_id", "")),
        **method_attributes(method, params),
    }
    known = session.__dict__
    target: Target | None = known.get("_chatobs_target")
    if target is not None:
        attrs.update(target.attributes())
    if known.get("_chatobs_server_name"):
        attrs[semconv.MCP_SERVER_NAME] = known["_chatobs_server_name"]
    if known.get("_chatobs_protocol"):
        attrs[semconv.MCP_PROTOCOL_VERSION] = known["_chatobs_protocol"]
    span = start_span(_span_name(method, params), kind=SpanKind.CLIENT, attributes=attrs, tracer=_tracer())
    carrier: dict[str, str] = {}
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        inject_meta(carrier)
    finally:
        otel_context.detach(token)
    if method == "tools/call":
        mark_traced_call(carrier)
    return span, _WithMeta(request, carrier)


def _finish_client_span(session: Any, span: Span, method: str, result: Any) -> None:
    if method == "initialize":
        info = getattr(result, "serverInfo", None)
        name = getattr(info, "name", None)
        if isinstance(name, str):
            session.__dict__["_chatobs_server_name"] = name
            span.set_attribute(semconv.MCP_SERVER_NAME, name)
        version = getattr(result, "protocolVersion", None)
        if isinstance(version, str):
            session.__dict__["_chatobs_protocol"] = version
            span.set_attribute(semconv.MCP_PROTOCOL_VERSION, version)
    elif method == "tools/call":
        tool_result(span, _result_view(result))
        mark_slow(span, getattr(span, "start_time", None))


def _result_view(result: Any) -> dict[str, Any]:
    """A wire-shaped view of a ``CallToolResult``: full only when tool I/O is captured, else the error flag and the
    first text (for the status message)."""
    if capture_io():
        return result.model_dump(by_alias=True, mode="json", exclude_none=True)
    view: dict[str, Any] = {"isError": bool(getattr(result, "isError", False))}
    if view["isError"]:
        for block in getattr(result, "content", None) or ():
            if getattr(block, "type", None) == "text":
                view["content"] = [{"type": "text", "text": block.text}]
                break
    return view


def _record_exception(span: Span, exc: BaseException) -> None:
    if not isinstance(exc, Exception):
        mark_failure(span, exc)
        return
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    if code is not None:  # McpError: the peer's JSON-RPC error (408 is the SDK's read timeout)
        span.set_attributes({semconv.ERROR_TYPE: str(code), semconv.RPC_RESPONSE_STATUS_CODE: str(code)})
        span.set_status(Status(StatusCode.ERROR, str(getattr(error, "message", ""))[:200]))
    else:
        span.set_attribute(semconv.ERROR_TYPE, type(exc).__qualname__)
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:200]))
    if span.attributes and span.attributes.get(semconv.GEN_AI_TOOL_NAME):  # type: ignore[attr-defined]
        mark_slow(span, getattr(span, "start_time", None))


def _make_send_request(original: Any) -> Any:
    from mcp.client.session import ClientSession

    async def send_request(self: Any, request: Any, result_type: Any, *args: Any, **kwargs: Any) -> Any:
        if STATE.settings is None or not isinstance(self, ClientSession):
            return await original(self, request, result_type, *args, **kwargs)
        try:
            span, wrapped = _start_client_span(self, request)
            method = getattr(request, "root", request).method
        except Exception as exc:  # noqa: BLE001
            warn("client span", exc)
            return await original(self, request, result_type, *args, **kwargs)
        try:
            result = await original(self, wrapped, result_type, *args, **kwargs)
        except BaseException as exc:
            try:
                _record_exception(span, exc)
            except Exception as inner:  # noqa: BLE001
                warn("client span", inner)
            span.end()
            raise
        try:
            _finish_client_span(self, span, method, result)
        except Exception as exc:  # noqa: BLE001
            warn("client span", exc)
        span.end()
        return result

    return send_request


def _make_session_init(original: Any) -> Any:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        target = take_opening_target()
        if target is not None:
            self.__dict__["_chatobs_target"] = target

    return __init__


# --- server ------------------------------------------------------------------------------------------------------------
def _server_transport(message: Any) -> dict[str, Any]:
    request = getattr(getattr(message, "message_metadata", None), "request_context", None)
    url = getattr(request, "url", None)
    if url is None:
        return {semconv.NETWORK_TRANSPORT: "pipe"}
    attrs: dict[str, Any] = {semconv.NETWORK_TRANSPORT: "tcp", semconv.NETWORK_PROTOCOL_NAME: "http"}
    if url.hostname:
        attrs[semconv.SERVER_ADDRESS] = url.hostname
    if url.port:
        attrs[semconv.SERVER_PORT] = url.port
    headers = getattr(request, "headers", None)
    session_id = headers.get("mcp-session-id") if headers is not None else None
    if session_id:
        attrs[semconv.MCP_SESSION_ID] = session_id
    return attrs


def _start_server_span(server: Any, message: Any, req: Any, session: Any) -> tuple[Span, object, dict[str, Any]]:
    method = req.method
    params_obj = getattr(req, "params", None)
    meta_obj = getattr(params_obj, "meta", None)
    meta = meta_obj.model_dump(by_alias=True, exclude_none=True) if meta_obj is not None else None
    ctx, s, extracted = server_context(meta)
    params = _plain_params(params_obj)
    attrs: dict[str, Any] = {
        semconv.MCP_METHOD_NAME: method,
        semconv.JSONRPC_REQUEST_ID: str(message.request_id),
        **method_attributes(method, params),
        **_server_transport(message),
    }
    if method == "tools/call":
        attrs.update(caller_attributes(meta))
    settings = STATE.settings
    name = (settings.mcp_server_name if settings else None) or getattr(server, "name", None)
    if name:
        attrs[semconv.MCP_SERVER_NAME] = name
    client_params = getattr(session, "client_params", None)
    version = getattr(client_params, "protocolVersion", None)
    if isinstance(version, str):
        attrs[semconv.MCP_PROTOCOL_VERSION] = version
    parent = (
        extracted if extracted is not None and trace.get_current_span(extracted).get_span_context().is_valid else None
    )
    span = start_span(
        _span_name(method, params), kind=SpanKind.SERVER, attributes=attrs, context=parent, tracer=_tracer()
    )
    stamp_identity(span, s)
    token = otel_context.attach(trace.set_span_in_context(span, ctx))
    seen: dict[str, Any] = {}
    respond = message.respond

    async def respond_and_note(response: Any) -> None:
        seen["response"] = response
        await respond(response)

    message.respond = respond_and_note
    return span, token, seen


def _finish_server_span(span: Span, method: str, response: Any) -> None:
    code = getattr(response, "code", None)
    if code is not None and hasattr(response, "message"):  # ErrorData
        span.set_attributes({semconv.ERROR_TYPE: str(code), semconv.RPC_RESPONSE_STATUS_CODE: str(code)})
        span.set_status(Status(StatusCode.ERROR, str(response.message)[:200]))
    elif method == "tools/call" and response is not None:
        tool_result(span, _result_view(getattr(response, "root", response)))
    if method == "tools/call":
        mark_slow(span, getattr(span, "start_time", None))


def _make_handle_request(original: Any) -> Any:
    async def _handle_request(self: Any, message: Any, req: Any, session: Any, *args: Any, **kwargs: Any) -> Any:
        if STATE.settings is None:
            return await original(self, message, req, session, *args, **kwargs)
        try:
            span, token, seen = _start_server_span(self, message, req, session)
        except Exception as exc:  # noqa: BLE001
            warn("server span", exc)
            return await original(self, message, req, session, *args, **kwargs)
        try:
            return await original(self, message, req, session, *args, **kwargs)
        except BaseException as exc:
            try:
                _record_exception(span, exc)
            except Exception as inner:  # noqa: BLE001
                warn("server span", inner)
            raise
        finally:
            otel_context.detach(token)  # type: ignore[arg-type]
            try:
                if span.is_recording():
                    _finish_server_span(span, req.method, seen.get("response"))
            except Exception as exc:  # noqa: BLE001
                warn("server span", exc)
            span.end()

    return _handle_request


def install_server(server: Any) -> None:
    """Nothing per server: ``Server._handle_request`` is patched for every server in the process."""


def instrument() -> None:
    from mcp.client import session as client_session
    from mcp.server.lowlevel import server as lowlevel
    from mcp.shared import session as shared_session

    patch(shared_session.BaseSession, "send_request", _make_send_request)
    patch(client_session.ClientSession, "__init__", _make_session_init)
    patch(lowlevel.Server, "_handle_request", _make_handle_request)
    patch_transports()


def uninstrument() -> None:
    """The patches are undone by the package's ``uninstrument``."""
