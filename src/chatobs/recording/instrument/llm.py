"""The public ``llm_call`` / ``allm_call`` API over the generic LLM-call recorder every provider adapter uses
(:mod:`.generation`; the message and usage shapes are in :mod:`.messages`).

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
pipeline's first stage (:mod:`chatobs.processing.content`) normalises it to the GenAI attributes with the functions
of :mod:`.messages`. Cost and masking run later in the background pipeline too. Content is captured unless ``CHATOBS_CAPTURE_CONTENT=false``; it is masked before export, never
here. Every chatobs step is guarded: a failure in it is logged (rate-limited) and never reaches the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from opentelemetry.trace import Span

from ...core import semconv
from ...core.guard import log_limited
from ..prompts import attributes_for as prompt_attributes
from ._coexist import SDK_CALL
from .generation import Generation, capture_enabled
from .messages import as_mapping, normalize_messages, text_parts


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
        [t if isinstance(t, Mapping) else as_mapping(t) for t in tools] if tools else None,
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
