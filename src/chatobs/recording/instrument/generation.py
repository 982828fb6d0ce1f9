"""One LLM call as a span (:class:`Generation`), and the pass-through wrappers that record a stream chunk by chunk."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ... import __version__
from ...core import semconv
from ...core.guard import log_limited
from ...core.json_text import to_json
from ..light_spans import LightSpan, records_content, start_span
from ..prompts import attributes_for as prompt_attributes
from ..span_attrs import set_trusted
from .messages import PARAM_ATTRIBUTES, usage_attributes

_tracer: trace.Tracer | None = None


def tracer() -> trace.Tracer:
    # Cached: a ProxyTracer obtained before the provider is set follows it once it is.
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer("chatobs", __version__)
    return _tracer


def capture_enabled() -> bool:
    """Capture content for a span started now? Not when ``CHATOBS_CAPTURE_CONTENT=false``, nor inside a trace head
    sampling dropped (its spans are light: see chatobs.recording.light_spans), so no message is normalised or encoded for nothing."""
    from ..installed import settings_or_none

    settings = settings_or_none()
    if settings is not None and not settings.capture_content:
        return False
    return records_content()


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
            set_trusted(self.span, attrs)
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
