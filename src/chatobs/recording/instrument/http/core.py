"""What the three HTTP-client adapters share: which request is an LLM call, its span, and reading the reply as it passes.

A request is an LLM call when it is a POST whose URL path ends like an LLM endpoint (checked first, on the URL alone,
so any other request costs one string test) and whose JSON body has that endpoint's shape. The span is started by the
SDK adapters' own request mappers (:func:`chatobs.recording.instrument.openai.begin`, :func:`chatobs.recording.instrument.anthropic.begin`),
and the reply is read by their response readers and stream states, fed with JSON seen through :class:`_View`: the
attributes are the same as for an SDK call by construction.

An :class:`Exchange` is fed the response bytes as the client passes them to the app: a Server-Sent-Events stream is
parsed event by event (only the unfinished line is held), any other body is kept up to
``CHATOBS_HTTP_LLM_MAX_BODY_BYTES`` and parsed when it ends. Nothing is changed on the way and every failure here is
logged (rate-limited) and swallowed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ....core import semconv
from ....core.guard import log_limited
from .._coexist import http_step_aside
from ..generation import Generation
from ..stainless import Call, cancel_when_imported, when_imported

if TYPE_CHECKING:
    from ....config import Settings

try:
    from orjson import loads as _loads  # the `fast` extra: request bodies are parsed on the request path
except ImportError:  # pragma: no cover - orjson not installed
    _loads = json.loads  # type: ignore[assignment]

__all__ = ["Exchange", "configure", "endpoint", "install", "start", "unwrap", "wrap"]

_MARK = "_chatobs_original"

# path ending -> endpoint kind; "/v1/messages" is Anthropic's (the SDK always adds the /v1)
_SUFFIXES = ("/chat/completions", "/responses", "/embeddings", "/v1/messages")
_KINDS = {
    "/chat/completions": "chat",
    "/responses": "responses",
    "/embeddings": "embeddings",
    "/v1/messages": "anthropic",
}

# gen_ai.provider.name of well-known API hosts (the GenAI conventions' values)
_KNOWN_HOSTS = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "api.groq.com": "groq",
    "api.mistral.ai": "mistral_ai",
    "api.deepseek.com": "deepseek",
    "api.x.ai": "x_ai",
    "api.perplexity.ai": "perplexity",
    "api.cohere.com": "cohere",
    "generativelanguage.googleapis.com": "gcp.gemini",
}

_hosts: tuple[str, ...] = ()  # exact hosts allowed (empty with no patterns: any host)
_host_suffixes: tuple[str, ...] = ()  # "*.example.com" -> ".example.com"
_providers: dict[str, str] = {}
_max_body = 4 * 1024 * 1024


def configure(settings: Settings) -> None:
    global _hosts, _host_suffixes, _providers, _max_body
    hosts = [h.strip().lower() for h in settings.http_llm_hosts]
    _hosts = tuple(h for h in hosts if not h.startswith("*."))
    _host_suffixes = tuple(h[1:] for h in hosts if h.startswith("*."))
    _providers = {}
    for pair in settings.http_llm_providers:
        host, _, provider = pair.partition("=")
        _providers[host.strip().lower()] = provider.strip()
    _max_body = settings.http_llm_max_body_bytes


def install(settings: Settings, module_name: str, patch: Callable[[Any], None]) -> bool:
    """An adapter's ``instrument``: patch ``module_name`` now if imported, else as soon as the app imports it."""
    configure(settings)
    when_imported(module_name, patch)
    return True


def wrap(cls: Any, attr: str, wrapper: Callable[..., Any]) -> None:
    original = getattr(cls, attr)
    setattr(wrapper, _MARK, original)
    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(cls, attr, wrapper)


def wrapped(cls: Any, attr: str) -> bool:
    return hasattr(getattr(cls, attr), _MARK)


def unwrap(module_name: str, *targets: tuple[str, str]) -> None:
    """An adapter's ``uninstrument``: ``targets`` are (class name in the module, method name)."""
    cancel_when_imported(module_name)
    module = sys.modules.get(module_name)
    for class_name, attr in targets:
        cls = getattr(module, class_name, None)
        original = getattr(getattr(cls, attr, None), _MARK, None)
        if original is not None:
            setattr(cls, attr, original)


def endpoint(method: str, path: str) -> str | None:
    """The endpoint kind of a request, from its method and URL path only (the cheap test every request pays)."""
    if not path.endswith(_SUFFIXES) or method.upper() != "POST":
        return None
    for suffix, kind in _KINDS.items():
        if path.endswith(suffix):
            return kind
    return None  # pragma: no cover - unreachable: the suffixes are the keys


def _host_allowed(host: str) -> bool:
    if not _hosts and not _host_suffixes:
        return True
    return host in _hosts or host.endswith(_host_suffixes)


def provider_of(host: str, port: int | None) -> str:
    if _providers:
        named = _providers.get(f"{host}:{port}") or _providers.get(host)
        if named:
            return named
    known = _KNOWN_HOSTS.get(host)
    if known:
        return known
    if host.endswith(".openai.azure.com"):
        return "azure.ai.openai"
    return host


def _shaped(kind: str, body: Mapping[str, Any]) -> bool:
    if not isinstance(body.get("model"), str):
        return False
    if kind == "chat":
        return isinstance(body.get("messages"), list)
    if kind == "anthropic":
        return isinstance(body.get("messages"), list) and "max_tokens" in body
    return "input" in body  # responses, embeddings


def start(kind: str, host: str | None, port: int | None, body: Any) -> Call | None:
    """The started LLM call of a request to an LLM endpoint, or None (not an LLM call, or recorded elsewhere).

    ``body``: the request body as bytes/str, or the object an HTTP client will encode as JSON.
    """
    try:
        if http_step_aside():
            return None
        host = (host or "").lower()
        if not _host_allowed(host):
            return None
        if isinstance(body, (bytes, bytearray, memoryview, str)):
            if len(body) > _max_body:
                return None
            try:
                body = _loads(body)
            except ValueError:  # not JSON: not an LLM call
                return None
        if not isinstance(body, Mapping) or not _shaped(kind, body):
            return None
        provider = provider_of(host, port)
        stream = body.get("stream") is True
        if kind == "anthropic":
            from ..anthropic import begin as begin_messages

            return begin_messages(body, provider, host or None, port, stream)
        from ..openai import begin as begin_openai

        return begin_openai(kind, body, provider, host or None, port, stream)
    except Exception as exc:  # noqa: BLE001 - not JSON, or a body chatobs cannot read: the request goes on untouched
        log_limited("http-llm-request", "chatobs: could not read an LLM request body: %s", exc)
        return None


class _View:
    """Attribute access over decoded JSON, so the SDK adapters' readers (written for SDK objects) read it as is."""

    __slots__ = ("_d",)

    def __init__(self, d: Mapping[str, Any]) -> None:
        self._d = d

    def __getattr__(self, name: str) -> Any:
        return _view(self._d.get(name))

    def model_dump(self, **_: Any) -> Mapping[str, Any]:  # how chatobs encodes an SDK object (tool-call input)
        return self._d


def _view(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _View(value)
    if isinstance(value, list):
        return [_view(v) for v in value]
    return value


class Exchange:
    """The reply of one LLM call over HTTP: fed bytes as they pass, ended once (idempotent)."""

    __slots__ = ("_body", "_data", "_done", "_line", "_over", "_size", "call", "sse", "state", "status")

    def __init__(self, call: Call, status: int, content_type: str | None) -> None:
        self.call = call
        self.status = status
        self.sse = status < 400 and "text/event-stream" in (content_type or "")
        self.state = call.new_state() if self.sse and call.new_state is not None else None
        self._body: list[bytes] = []
        self._size = 0
        self._line = b""  # the unfinished SSE line
        self._data: list[str] = []  # data lines of the event being read
        self._over = False  # past the size limit: stop reading
        self._done = False
        try:
            call.gen.span.set_attribute(semconv.HTTP_RESPONSE_STATUS_CODE, status)
        except Exception:  # noqa: BLE001
            pass

    def feed(self, data: bytes) -> None:
        if self._done or self._over or not data:
            return
        try:
            if self.sse:
                self._feed_sse(data)
                return
            self._size += len(data)
            if self._size > _max_body:
                self._over = True
                self._body = []
                return
            self._body.append(bytes(data))
        except Exception as exc:  # noqa: BLE001
            self._over = True
            log_limited("http-llm-response", "chatobs: could not read an LLM response: %s", exc)

    def _feed_sse(self, data: bytes) -> None:
        # Hand-written: the SSE libraries pull from a response object; this is pushed the bytes the app reads.
        lines = (self._line + data).split(b"\n")
        self._line = lines.pop()
        if len(self._line) > _max_body:
            self._over = True
            return
        for raw in lines:
            line = raw.rstrip(b"\r")
            if not line:
                self._dispatch()
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append((value[1:] if value.startswith(b" ") else value).decode("utf-8", "replace"))

    def _dispatch(self) -> None:
        if not self._data:
            return
        data = "\n".join(self._data)
        self._data = []
        self.call.gen.first_chunk()
        if data == "[DONE]" or self.state is None:
            return
        try:
            event = _loads(data)
        except ValueError:
            return
        if isinstance(event, Mapping):
            self.state.add(_View(event))

    def finish(self, abandoned: bool = False) -> None:
        if self._done:
            return
        self._done = True
        gen = self.call.gen
        try:
            if self.sse:
                if not self._over and self._line.strip():
                    self._feed_sse(b"\n\n")
                self._dispatch()
                gen.finish(self.state, abandoned=abandoned)
                return
            body = _loads(b"".join(self._body)) if self._body and not self._over else None
            self._body = []
            if self.status >= 400:
                _record_error(gen, self.status, body)
            elif isinstance(body, Mapping):
                self.call.read_response(gen, _View(body))
        except Exception as exc:  # noqa: BLE001
            log_limited("http-llm-response", "chatobs: could not read an LLM response: %s", exc)
        gen.end(abandoned)

    def fail(self, exc: BaseException) -> None:
        if not self._done:
            self.call.gen.fail(exc)
            self.finish()


def _record_error(gen: Generation, status: int, body: Any) -> None:
    """error.type from the error body (OpenAI ``{"error": {"type"}}``, Anthropic ``{"type": "error", "error": ...}``),
    else the status code, as the HTTP conventions do."""
    error = body.get("error") if isinstance(body, Mapping) else None
    kind = error.get("type") or error.get("code") if isinstance(error, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    from opentelemetry.trace import Status, StatusCode

    gen.span.set_attribute(semconv.ERROR_TYPE, str(kind or status))
    gen.span.set_status(Status(StatusCode.ERROR, f"HTTP {status}: {message or kind or ''}"[:300]))


def start_failed(call: Call, exc: BaseException) -> None:
    """The request raised before a response (connection error, timeout): the span ends failed."""
    call.gen.fail(exc)
    call.gen.end()
