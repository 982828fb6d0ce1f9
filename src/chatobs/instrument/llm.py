"""The generic LLM-call recorder every provider adapter uses, and the public ``llm_call`` / ``allm_call`` API.

One :class:`Generation` is one LLM call: a CLIENT span named ``{operation} {model}`` carrying the OpenTelemetry GenAI
attributes (request parameters, input/output messages in the GenAI "parts" format, usage, finish reasons, time to
first chunk, errors). Provider adapters only translate their request/response objects into the plain values this
module takes (like Logfire's per-endpoint config + stream state, with even less machinery):

- request side: ``Generation(provider, model, operation, params=..., input_messages=..., ...)``
- response side: ``gen.record(output_messages=..., usage=..., ...)`` then ``gen.end()``
- streams: a :class:`StreamState` per provider turns chunks into one :class:`Result`; :func:`wrap_stream` /
  :func:`wrap_astream` pass every chunk straight through (never buffered), time the first one, and end the span when
  the stream is exhausted, fails, or is abandoned (closed or garbage-collected early) with what was seen.

Only span creation and an exact snapshot of the content happen here (the request path): the adapters pass what was
sent as is (``raw=(format, value)``), encoded once to a JSON string (``chatobs.raw.request``); the background
pipeline's first stage (:mod:`chatobs.pipeline.content`) normalises it to the GenAI attributes with the functions
below. Cost and masking run later in the background pipeline too. Content is captured unless ``CHATOBS_CAPTURE_CONTENT=false``; it is masked before export, never
here. Every chatobs step is guarded: a failure in it is logged (rate-limited) and never reaches the app.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .. import __version__, semconv
from .._guard import log_limited
from .._light import LightSpan, records_content, start_span
from ..prompts import attributes_for as prompt_attributes
from ._coexist import SDK_CALL

__all__ = [
    "Generation",
    "LLMCall",
    "Result",
    "StreamState",
    "allm_call",
    "capture_enabled",
    "from_json",
    "json_or_str",
    "llm_call",
    "normalize_messages",
    "normalize_output",
    "request_content",
    "text_parts",
    "to_json",
    "wrap_astream",
    "wrap_stream",
]

_tracer: trace.Tracer | None = None

# Request parameter (generic name) -> GenAI attribute. Adapters map provider spellings onto the generic names.
PARAM_ATTRIBUTES: dict[str, str] = {
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "max_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "top_p": semconv.GEN_AI_REQUEST_TOP_P,
    "top_k": semconv.GEN_AI_REQUEST_TOP_K,
    "frequency_penalty": semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": semconv.GEN_AI_REQUEST_PRESENCE_PENALTY,
    "stop": semconv.GEN_AI_REQUEST_STOP_SEQUENCES,
    "stop_sequences": semconv.GEN_AI_REQUEST_STOP_SEQUENCES,
    "seed": semconv.GEN_AI_REQUEST_SEED,
}

# Usage key spellings (OpenAI, Anthropic, genai-prices, Google...) -> GenAI attribute.
USAGE_ATTRIBUTES: dict[str, str] = {
    "input_tokens": semconv.GEN_AI_USAGE_INPUT_TOKENS,
    "prompt_tokens": semconv.GEN_AI_USAGE_INPUT_TOKENS,
    "prompt_token_count": semconv.GEN_AI_USAGE_INPUT_TOKENS,
    "output_tokens": semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
    "completion_tokens": semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
    "candidates_token_count": semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
    "cache_read_input_tokens": semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "cache_read_tokens": semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "cached_tokens": semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "cache_creation_input_tokens": semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    "cache_write_tokens": semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    "reasoning_tokens": semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    "reasoning_output_tokens": semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
}


def tracer() -> trace.Tracer:
    # Cached: a ProxyTracer obtained before the provider is set follows it once it is.
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer("chatobs", __version__)
    return _tracer


def capture_enabled() -> bool:
    """Capture content for a span started now? Not when ``CHATOBS_CAPTURE_CONTENT=false``, nor inside a trace head
    sampling dropped (its spans are light: see chatobs._light), so no message is normalised or encoded for nothing."""
    from ..runtime import settings_or_none

    settings = settings_or_none()
    if settings is not None and not settings.capture_content:
        return False
    return records_content()


_orjson: Any = None  # orjson's module once looked up (the `fast` extra); False when it is not installed


def to_json(value: Any) -> str:
    """Compact JSON of a content value. On the request path (LLM calls encode every message they send), so orjson
    when installed -- about 3x faster -- with the standard library as the fallback for what orjson refuses."""
    global _orjson
    if _orjson is None:
        try:
            import orjson as _orjson
        except ImportError:
            _orjson = False
    if _orjson:
        try:
            return _orjson.dumps(value, default=_json_default).decode()
        except (TypeError, ValueError):
            pass  # e.g. an integer over 64 bits or a non-string key: the standard encoder takes those
    return json.dumps(value, ensure_ascii=False, default=_json_default, separators=(",", ":"))


def from_json(text: str) -> Any:
    """Decode what :func:`to_json` encoded (background: the content stage)."""
    if _orjson is None:
        to_json(None)  # looks orjson up
    if _orjson:
        try:
            return _orjson.loads(text)
        except ValueError:
            pass  # e.g. an integer over 64 bits, which the standard encoder wrote
    return json.loads(text)


def _json_default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(exclude_none=True)
        except Exception:  # noqa: BLE001 - fall back to the repr below
            pass
    return str(value)


# --- message normalisation (OpenAI-style dicts, the lingua franca of most providers -> GenAI parts) --------------
def _as_mapping(obj: Any) -> Mapping[str, Any]:
    if isinstance(obj, Mapping):
        return obj
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    return {"role": "user", "content": str(obj)}


def json_or_str(value: Any) -> Any:
    """Tool-call arguments as the GenAI conventions want them: the parsed JSON object, else the raw string."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def text_parts(content: Any) -> list[dict[str, Any]]:
    """GenAI parts for a message content: a string, a list of OpenAI/Anthropic-style parts, or anything else."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        parts: list[dict[str, Any]] = []
        for item in content:
            if isinstance(item, str):
                parts.append({"type": "text", "content": item})
                continue
            part = _as_mapping(item)
            kind = part.get("type")
            if kind in ("text", "input_text", "output_text") or (kind is None and "text" in part):
                parts.append({"type": "text", "content": part.get("text", "")})
            elif kind in ("image_url", "input_image", "image"):
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, Mapping) else url
                if isinstance(url, str) and not url.startswith("data:"):
                    parts.append({"type": "uri", "modality": "image", "uri": url})
                else:  # inline data is large and rarely useful in a trace
                    parts.append({"type": "blob", "modality": "image", "content": "<omitted>"})
            elif kind in ("tool_use", "function_call"):
                parts.append(
                    {
                        "type": "tool_call",
                        "id": part.get("id") or part.get("call_id"),
                        "name": part.get("name"),
                        "arguments": json_or_str(part.get("input", part.get("arguments"))),
                    }
                )
            elif kind in ("tool_result", "function_call_output"):
                parts.append(
                    {
                        "type": "tool_call_response",
                        "id": part.get("tool_use_id") or part.get("call_id"),
                        "response": _flatten_text(part.get("content", part.get("output"))),
                    }
                )
            elif kind in ("thinking", "reasoning"):
                parts.append({"type": "reasoning", "content": part.get("thinking") or part.get("text") or ""})
            else:
                parts.append({"type": str(kind or "generic"), **{k: v for k, v in part.items() if k != "type"}})
        return parts
    return [{"type": "text", "content": str(content)}]


def _flatten_text(content: Any) -> Any:
    if isinstance(content, list):
        texts = [p.get("content") for p in text_parts(content) if p.get("type") == "text"]
        return "\n".join(t for t in texts if isinstance(t, str))
    return content


def normalize_messages(messages: Any) -> list[dict[str, Any]]:
    """OpenAI-style chat messages (or a single prompt string) -> GenAI input messages (``role`` + ``parts``)."""
    if messages is None:
        return []
    if isinstance(messages, str):
        return [{"role": "user", "parts": text_parts(messages)}]
    out: list[dict[str, Any]] = []
    for raw in messages:
        message = _as_mapping(raw)
        if "parts" in message and "role" in message:  # already GenAI-shaped
            out.append(dict(message))
            continue
        role = message.get("role") or "user"
        if role == "tool" or role == "function":
            parts = [
                {
                    "type": "tool_call_response",
                    "id": message.get("tool_call_id") or message.get("name"),
                    "response": _flatten_text(message.get("content")),
                }
            ]
        else:
            parts = text_parts(message.get("content"))
            for call in message.get("tool_calls") or ():
                call = _as_mapping(call)
                fn = _as_mapping(call.get("function") or {})
                parts.append(
                    {
                        "type": "tool_call",
                        "id": call.get("id"),
                        "name": fn.get("name"),
                        "arguments": json_or_str(fn.get("arguments")),
                    }
                )
        entry: dict[str, Any] = {"role": role, "parts": parts}
        if message.get("name") and role != "function":
            entry["name"] = message["name"]
        out.append(entry)
    return out


def normalize_output(output: Any, finish_reason: str | None = None) -> list[dict[str, Any]]:
    """What ``LLMCall.record(output=...)`` accepts (a string, a message dict, or a list of them) -> output messages."""
    if output is None:
        return []
    if isinstance(output, str):
        messages = [{"role": "assistant", "parts": text_parts(output)}]
    elif isinstance(output, Mapping) or hasattr(output, "model_dump"):
        messages = normalize_messages([output])
    else:
        messages = normalize_messages(output)
    for m in messages:
        m.setdefault("role", "assistant")
        if finish_reason and "finish_reason" not in m:
            m["finish_reason"] = finish_reason
    return messages


def usage_attributes(usage: Any) -> dict[str, int]:
    """Token counts from a usage dict or object (any common spelling) -> GenAI usage attributes."""
    if usage is None:
        return {}
    items: Mapping[str, Any]
    if isinstance(usage, Mapping):
        items = usage
    else:
        items = {k: getattr(usage, k, None) for k in USAGE_ATTRIBUTES}
    attrs: dict[str, int] = {}
    for key, value in items.items():
        attr = USAGE_ATTRIBUTES.get(key)
        if attr is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and attr not in attrs:
            attrs[attr] = int(value)
    return attrs


# --- the recorder -------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Result:
    """What a provider returned, in generic form."""

    output_messages: list[dict[str, Any]] | None = None
    usage: Any = None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: Sequence[str] | None = None


class StreamState(Protocol):
    """Per-provider stream accumulator. ``add`` returns False for a chunk the app must not see."""

    def add(self, chunk: Any) -> bool: ...

    def result(self) -> Result: ...


class Generation:
    """One LLM call span. Never raises: every method swallows and logs its own failures."""

    __slots__ = ("_ended", "_first", "_start", "capture", "span")

    def __init__(
        self,
        provider: str,
        model: str | None,
        operation: str = semconv.OP_CHAT,
        *,
        params: Mapping[str, Any] | None = None,
        input_messages: list[dict[str, Any]] | None = None,
        system_instructions: list[dict[str, Any]] | None = None,
        tool_definitions: list[Any] | None = None,
        raw: tuple[str, Any] | None = None,
        stream: bool = False,
        server_address: str | None = None,
        server_port: int | None = None,
        capture: bool | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        self.capture = capture_enabled() if capture is None else capture
        self._start = time.perf_counter()
        self._first: float | None = None
        self._ended = False
        attrs: dict[str, Any] = {
            semconv.GEN_AI_OPERATION_NAME: operation,
            semconv.GEN_AI_PROVIDER_NAME: provider,
            semconv.OBSERVATION_TYPE: "llm",
        }
        try:
            if model:
                attrs[semconv.GEN_AI_REQUEST_MODEL] = model
            if stream:
                attrs[semconv.GEN_AI_REQUEST_STREAM] = True
            if server_address:
                attrs[semconv.SERVER_ADDRESS] = server_address
            if server_port:
                attrs[semconv.SERVER_PORT] = server_port
            for key, value in (params or {}).items():
                attr = PARAM_ATTRIBUTES.get(key)
                if attr is None or value is None:
                    continue
                if isinstance(value, str) and attr == semconv.GEN_AI_REQUEST_STOP_SEQUENCES:
                    value = [value]
                if isinstance(value, (str, int, float, bool)) or (
                    isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
                ):
                    attrs[attr] = list(value) if isinstance(value, tuple) else value
            if self.capture:
                if raw is not None:  # the exact snapshot; normalised in the background (see the module docstring)
                    attrs[semconv.RAW_FORMAT] = raw[0]
                    attrs[semconv.RAW_REQUEST] = to_json(raw[1])
                if input_messages:
                    attrs[semconv.GEN_AI_INPUT_MESSAGES] = to_json(input_messages)
                if system_instructions:
                    attrs[semconv.GEN_AI_SYSTEM_INSTRUCTIONS] = to_json(system_instructions)
                if tool_definitions:
                    attrs[semconv.GEN_AI_TOOL_DEFINITIONS] = to_json(tool_definitions)
            if attributes:
                attrs.update(attributes)
            if semconv.GEN_AI_PROMPT_NAME not in attrs:
                attrs.update(prompt_attributes())  # the innermost chatobs.prompt(), if any
        except Exception as exc:  # noqa: BLE001
            log_limited("llm-request", "chatobs: could not record an LLM request: %s", exc)
        self.span: Span = start_span(
            f"{operation} {model}" if model else operation, kind=SpanKind.CLIENT, attributes=attrs, tracer=tracer()
        )
        if type(self.span) is LightSpan:
            self.capture = False

    # request path helpers -----------------------------------------------------------------------------------------
    def activate(self) -> object:
        """Make the span current (so HTTP client spans nest under it); pass the token to :meth:`deactivate`."""
        return otel_context.attach(trace.set_span_in_context(self.span))

    @staticmethod
    def deactivate(token: object) -> None:
        try:
            otel_context.detach(token)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - a token from another context: nothing to restore
            pass

    def first_chunk(self) -> None:
        if self._first is None:
            self._first = time.perf_counter()
            try:
                self.span.set_attribute(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, self._first - self._start)
            except Exception:  # noqa: BLE001
                pass

    def record(
        self,
        output_messages: list[dict[str, Any]] | None = None,
        usage: Any = None,
        response_model: str | None = None,
        response_id: str | None = None,
        finish_reasons: Sequence[str] | None = None,
        raw_output: tuple[Any, str | None] | None = None,
    ) -> None:
        """``raw_output``: ``(output, finish_reason)`` as ``llm_call`` got them, normalised in the background."""
        try:
            attrs: dict[str, Any] = usage_attributes(usage)
            if response_model:
                attrs[semconv.GEN_AI_RESPONSE_MODEL] = response_model
            if response_id:
                attrs[semconv.GEN_AI_RESPONSE_ID] = response_id
            reasons = [r for r in (finish_reasons or ()) if r]
            if reasons:
                attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
            if self.capture and output_messages:
                attrs[semconv.GEN_AI_OUTPUT_MESSAGES] = to_json(output_messages)
            if self.capture and raw_output is not None:
                attrs[semconv.RAW_OUTPUT] = to_json(raw_output)
            if attrs:
                self.span.set_attributes(attrs)
        except Exception as exc:  # noqa: BLE001
            log_limited("llm-response", "chatobs: could not record an LLM response: %s", exc)

    def record_result(self, result: Result) -> None:
        self.record(
            result.output_messages, result.usage, result.response_model, result.response_id, result.finish_reasons
        )

    def fail(self, exc: BaseException) -> None:
        try:
            self.span.set_attribute(semconv.ERROR_TYPE, type(exc).__qualname__)
            self.span.record_exception(exc)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:300]))
        except Exception as err:  # noqa: BLE001
            log_limited("llm-error", "chatobs: could not record an LLM error: %s", err)

    def end(self, abandoned: bool = False) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            if abandoned:
                self.span.set_attribute(semconv.STREAM_ABANDONED, True)
            self.span.end()
        except Exception as exc:  # noqa: BLE001
            log_limited("llm-end", "chatobs: could not end an LLM span: %s", exc)

    @property
    def ended(self) -> bool:
        return self._ended

    def finish(self, state: StreamState | None, abandoned: bool = False) -> None:
        """End a streamed call with what its state accumulated (idempotent)."""
        if self._ended:
            return
        if state is not None:
            try:
                self.record_result(state.result())
            except Exception as exc:  # noqa: BLE001
                log_limited("llm-stream", "chatobs: could not assemble a streamed LLM response: %s", exc)
        self.end(abandoned)


def _add(state: StreamState, chunk: Any) -> bool:
    try:
        return state.add(chunk)
    except Exception as exc:  # noqa: BLE001 - a chunk chatobs cannot read still goes to the app
        log_limited("llm-chunk", "chatobs: could not read a stream chunk: %s", exc)
        return True


def wrap_stream(gen: Generation, iterator: Iterator[Any], state: StreamState) -> Iterator[Any]:
    """Yield ``iterator``'s chunks unchanged (minus those ``state`` hides), recording them; ends the span at the end."""
    done = False
    try:
        for chunk in iterator:
            gen.first_chunk()
            if _add(state, chunk):
                yield chunk
        done = True
    except GeneratorExit:
        raise
    except BaseException as exc:
        gen.fail(exc)
        done = True
        raise
    finally:
        gen.finish(state, abandoned=not done)


async def wrap_astream(gen: Generation, iterator: AsyncIterator[Any], state: StreamState) -> AsyncIterator[Any]:
    done = False
    try:
        async for chunk in iterator:
            gen.first_chunk()
            if _add(state, chunk):
                yield chunk
        done = True
    except GeneratorExit:
        raise
    except BaseException as exc:
        gen.fail(exc)
        done = True
        raise
    finally:
        gen.finish(state, abandoned=not done)


# --- public manual API --------------------------------------------------------------------------------------------
class LLMCall:
    """Handle yielded by :func:`llm_call`: record what the model returned."""

    __slots__ = ("_chunks", "_gen", "_recorded")

    def __init__(self, gen: Generation) -> None:
        self._gen = gen
        self._chunks: list[str] = []
        self._recorded = False

    @property
    def span(self) -> Span:
        return self._gen.span

    def record(
        self,
        output: Any = None,
        usage: Any = None,
        *,
        model: str | None = None,
        response_id: str | None = None,
        finish_reason: str | Sequence[str] | None = None,
    ) -> None:
        """Record the reply: ``output`` (text, a message dict or a list of them), ``usage`` (dict or object with
        ``input_tokens``/``output_tokens`` or ``prompt_tokens``/``completion_tokens``...), response model/id."""
        try:
            reasons = [finish_reason] if isinstance(finish_reason, str) else list(finish_reason or ())
            if output is None and self._chunks:
                output = "".join(self._chunks)
            raw = (output, reasons[0] if reasons else None) if self._gen.capture and output is not None else None
            self._gen.record(None, usage, model, response_id, reasons, raw_output=raw)
            self._recorded = True
        except Exception as exc:  # noqa: BLE001
            log_limited("llm-call", "chatobs: llm_call.record failed: %s", exc)

    def chunk(self, text: str | None = None) -> None:
        """Call once per streamed chunk: the first one sets time to first chunk; texts are joined as the output."""
        self._gen.first_chunk()
        if text and self._gen.capture:
            self._chunks.append(text)

    def set_attribute(self, key: str, value: Any) -> None:
        try:
            self._gen.span.set_attribute(key, value)
        except Exception:  # noqa: BLE001
            pass

    def _close(self, exc: BaseException | None) -> None:
        if exc is not None:
            self._gen.fail(exc)
        if not self._recorded and self._chunks:
            self.record()
        self._gen.end()


def _start(
    provider: str,
    model: str | None,
    messages: Any,
    operation: str,
    system: Any,
    tools: Any,
    stream: bool,
    params: dict[str, Any],
    prompt: Any = None,
) -> Generation:
    capture = capture_enabled()
    return Generation(
        provider,
        model,
        operation,
        params=params,
        raw=("generic", (messages, system, tools)) if capture else None,
        stream=stream,
        capture=capture,
        attributes=prompt_attributes(prompt) if prompt is not None else None,
    )


def _generic_content(raw: Any) -> tuple[Any, Any, Any]:
    messages, system, tools = raw
    return (
        normalize_messages(messages),
        text_parts(system) if system is not None else None,
        [t if isinstance(t, Mapping) else _as_mapping(t) for t in tools] if tools else None,
    )


def request_content(fmt: str, raw: Any) -> tuple[Any, Any, Any]:
    """(input messages, system instructions, tool definitions) in GenAI form from a decoded ``chatobs.raw.request``
    of format ``fmt`` (background only). Raises ValueError for a format chatobs does not know."""
    if fmt == "generic":
        return _generic_content(raw)
    if fmt == "anthropic":
        from .anthropic import request_content as anthropic_content  # no cycle at import time

        return anthropic_content(raw)
    if fmt in ("openai.chat", "openai.responses"):
        from .openai import request_content as openai_content

        return openai_content(fmt, raw)
    raise ValueError(f"unknown content format {fmt!r}")


@contextmanager
def llm_call(
    provider: str,
    model: str | None = None,
    messages: Any = None,
    *,
    operation: str = semconv.OP_CHAT,
    system: Any = None,
    tools: Sequence[Any] | None = None,
    stream: bool = False,
    prompt: Any = None,
    **params: Any,
) -> Iterator[LLMCall]:
    """Record an LLM call made with any client (Google, Mistral, a local model, plain HTTP)::

        with chatobs.llm_call(provider="mistral", model="mistral-small", messages=msgs, temperature=0.2) as call:
            reply = client.chat(...)
            call.record(output=reply.text, usage={"input_tokens": 12, "output_tokens": 30})

    ``messages``: a prompt string or OpenAI-style ``{"role", "content"}`` dicts. ``params``: request parameters
    (``temperature``, ``max_tokens``, ``top_p``, ``top_k``, ``stop``, ``seed``, ...). An exception raised inside marks
    the span failed (``error.type``) and propagates unchanged. For streams call ``call.chunk(text)`` per chunk.
    ``prompt``: the prompt the call was built from, a name or ``(name, version)`` (see :func:`chatobs.prompt`).
    """
    gen = _start(provider, model, messages, operation, system, tools, stream, params, prompt)
    call = LLMCall(gen)
    token = gen.activate()
    flag = SDK_CALL.set(True)  # the app records this call itself: the HTTP layer leaves its requests alone
    try:
        yield call
    except BaseException as exc:
        call._close(exc)
        raise
    else:
        call._close(None)
    finally:
        try:
            SDK_CALL.reset(flag)
        except ValueError:  # left in another context: nothing to restore
            pass
        gen.deactivate(token)


@asynccontextmanager
async def allm_call(
    provider: str,
    model: str | None = None,
    messages: Any = None,
    *,
    operation: str = semconv.OP_CHAT,
    system: Any = None,
    tools: Sequence[Any] | None = None,
    stream: bool = False,
    prompt: Any = None,
    **params: Any,
) -> AsyncIterator[LLMCall]:
    """Async equivalent of :func:`llm_call` (``async with chatobs.allm_call(...) as call:``)."""
    gen = _start(provider, model, messages, operation, system, tools, stream, params, prompt)
    call = LLMCall(gen)
    token = gen.activate()
    flag = SDK_CALL.set(True)  # the app records this call itself: the HTTP layer leaves its requests alone
    try:
        yield call
    except BaseException as exc:
        call._close(exc)
        raise
    else:
        call._close(None)
    finally:
        try:
            SDK_CALL.reset(flag)
        except ValueError:  # left in another context: nothing to restore
            pass
        gen.deactivate(token)
