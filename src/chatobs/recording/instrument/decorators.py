"""``@chatobs.workflow``, ``@chatobs.task``, ``@chatobs.agent``, ``@chatobs.tool``: a span per call of a function.

Works on sync and async functions and on sync and async generators (the span stays open while the generator is
consumed; it is current only while the generator's own code runs, so the caller's context is never disturbed).
Usable bare (``@chatobs.tool``) or with options (``@chatobs.workflow(name="answer")``).

Span names and operations follow the GenAI conventions where they fit: ``invoke_workflow {name}``,
``invoke_agent {name}`` (``gen_ai.agent.name``), ``execute_tool {name}`` (``gen_ai.tool.name``); a task is a plain
INTERNAL span named after the function. Every span carries ``chatobs.observation.type``. Arguments and the return
value are captured as JSON in ``chatobs.input`` / ``chatobs.output`` (tools also as ``gen_ai.tool.call.arguments`` /
``gen_ai.tool.call.result``) when content capture is on; they are masked before export. Exceptions are recorded
(``error.type``, status ERROR) and re-raised unchanged.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from ...core import semconv
from ...core.guard import log_limited
from ...core.json_text import to_json
from ..light_spans import LightSpan, start_span
from .generation import capture_enabled, tracer

__all__ = ["agent", "task", "tool", "workflow"]

F = TypeVar("F", bound=Callable[..., Any])

_MAX_ITEMS = 100  # yielded items kept as a generator's output (the rest is counted, not stored)

_KINDS: dict[str, tuple[str | None, str | None]] = {
    # kind -> (gen_ai.operation.name, name attribute)
    "workflow": (semconv.OP_INVOKE_WORKFLOW, None),
    "task": (None, None),
    "agent": (semconv.OP_INVOKE_AGENT, semconv.GEN_AI_AGENT_NAME),
    "tool": (semconv.OP_EXECUTE_TOOL, semconv.GEN_AI_TOOL_NAME),
}


def _arguments(
    fn: Callable[..., Any], signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    if signature is None:
        return {"args": list(args), **kwargs}
    try:
        bound = signature.bind_partial(*args, **kwargs)
    except TypeError:
        return {"args": list(args), **kwargs}
    out = dict(bound.arguments)
    out.pop("self", None)
    out.pop("cls", None)
    return out


class _Spec:
    __slots__ = ("capture_input", "capture_output", "kind", "name", "name_attr", "operation", "signature", "span_name")

    def __init__(self, kind: str, name: str, fn: Callable[..., Any], capture_input: bool, capture_output: bool) -> None:
        self.kind = kind
        self.name = name
        self.operation, self.name_attr = _KINDS[kind]
        self.capture_input = capture_input
        self.capture_output = capture_output
        try:
            self.signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            self.signature = None
        self.span_name = f"{self.operation} {name}" if self.operation else name

    def start(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Span, bool]:
        capture = False
        attrs: dict[str, Any] = {semconv.OBSERVATION_TYPE: self.kind}
        try:
            if self.operation:
                attrs[semconv.GEN_AI_OPERATION_NAME] = self.operation
            if self.name_attr:
                attrs[self.name_attr] = self.name
            capture = capture_enabled()
            if capture and self.capture_input:
                value = to_json(_arguments(fn, self.signature, args, kwargs))
                attrs[semconv.INPUT] = value
                if self.kind == "tool":
                    attrs[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] = value
        except Exception as exc:  # noqa: BLE001
            log_limited("decorator", "chatobs: could not record the input of %s: %s", self.name, exc)
        span = start_span(self.span_name, kind=SpanKind.INTERNAL, attributes=attrs, tracer=tracer())
        return span, capture and type(span) is not LightSpan

    def output(self, span: Span, capture: bool, value: Any) -> None:
        if not (capture and self.capture_output):
            return
        try:
            text = to_json(value)
            span.set_attribute(semconv.OUTPUT, text)
            if self.kind == "tool":
                span.set_attribute(semconv.GEN_AI_TOOL_CALL_RESULT, text)
        except Exception as exc:  # noqa: BLE001
            log_limited("decorator", "chatobs: could not record the output of %s: %s", self.name, exc)


def _fail(span: Span, exc: BaseException) -> None:
    try:
        span.set_attribute(semconv.ERROR_TYPE, type(exc).__qualname__)
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:300]))
    except Exception:  # noqa: BLE001
        pass


def _end(span: Span) -> None:
    try:
        span.end()
    except Exception:  # noqa: BLE001
        pass


def _wrap(fn: F, spec: _Spec) -> F:
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
            span, capture = spec.start(fn, args, kwargs)
            ctx = trace.set_span_in_context(span)
            items: list[Any] = []
            count = 0
            agen = fn(*args, **kwargs)
            try:
                while True:
                    token = otel_context.attach(ctx)
                    try:
                        item = await agen.__anext__()
                    except StopAsyncIteration:
                        break
                    finally:
                        otel_context.detach(token)
                    count += 1
                    if capture and len(items) < _MAX_ITEMS:
                        items.append(item)
                    yield item
            except GeneratorExit:
                await agen.aclose()
                raise
            except BaseException as exc:
                _fail(span, exc)
                raise
            finally:
                spec.output(span, capture, items if count <= _MAX_ITEMS else {"items": items, "count": count})
                _end(span)

        return agen_wrapper  # type: ignore[return-value]

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            span, capture = spec.start(fn, args, kwargs)
            ctx = trace.set_span_in_context(span)
            items: list[Any] = []
            count = 0
            gen = fn(*args, **kwargs)
            try:
                while True:
                    token = otel_context.attach(ctx)
                    try:
                        item = next(gen)
                    except StopIteration as stop:
                        if stop.value is not None and capture:
                            items.append(stop.value)
                        break
                    finally:
                        otel_context.detach(token)
                    count += 1
                    if capture and len(items) < _MAX_ITEMS:
                        items.append(item)
                    yield item
            except GeneratorExit:
                gen.close()
                raise
            except BaseException as exc:
                _fail(span, exc)
                raise
            finally:
                spec.output(span, capture, items if count <= _MAX_ITEMS else {"items": items, "count": count})
                _end(span)

        return gen_wrapper  # type: ignore[return-value]

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            span, capture = spec.start(fn, args, kwargs)
            token = otel_context.attach(trace.set_span_in_context(span))
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                _fail(span, exc)
                raise
            else:
                spec.output(span, capture, result)
                return result
            finally:
                otel_context.detach(token)
                _end(span)

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        span, capture = spec.start(fn, args, kwargs)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            _fail(span, exc)
            raise
        else:
            spec.output(span, capture, result)
            return result
        finally:
            otel_context.detach(token)
            _end(span)

    return sync_wrapper  # type: ignore[return-value]


def _decorator(
    kind: str, fn: Callable[..., Any] | None, name: str | None, capture_input: bool, capture_output: bool
) -> Any:
    def decorate(f: F) -> F:
        spec = _Spec(kind, name or getattr(f, "__name__", None) or kind, f, capture_input, capture_output)
        return _wrap(f, spec)

    return decorate(fn) if fn is not None else decorate


@overload
def workflow(fn: F) -> F: ...
@overload
def workflow(
    *, name: str | None = None, capture_input: bool = True, capture_output: bool = True
) -> Callable[[F], F]: ...
def workflow(
    fn: Any = None, *, name: str | None = None, capture_input: bool = True, capture_output: bool = True
) -> Any:
    """A span ``invoke_workflow {name}`` per call: the top-level flow of a chat turn."""
    return _decorator("workflow", fn, name, capture_input, capture_output)


@overload
def task(fn: F) -> F: ...
@overload
def task(*, name: str | None = None, capture_input: bool = True, capture_output: bool = True) -> Callable[[F], F]: ...
def task(fn: Any = None, *, name: str | None = None, capture_input: bool = True, capture_output: bool = True) -> Any:
    """A span ``{name}`` per call: one step (retrieval, reranking, formatting...)."""
    return _decorator("task", fn, name, capture_input, capture_output)


@overload
def agent(fn: F) -> F: ...
@overload
def agent(*, name: str | None = None, capture_input: bool = True, capture_output: bool = True) -> Callable[[F], F]: ...
def agent(fn: Any = None, *, name: str | None = None, capture_input: bool = True, capture_output: bool = True) -> Any:
    """A span ``invoke_agent {name}`` per call, with ``gen_ai.agent.name``."""
    return _decorator("agent", fn, name, capture_input, capture_output)


@overload
def tool(fn: F) -> F: ...
@overload
def tool(*, name: str | None = None, capture_input: bool = True, capture_output: bool = True) -> Callable[[F], F]: ...
def tool(fn: Any = None, *, name: str | None = None, capture_input: bool = True, capture_output: bool = True) -> Any:
    """A span ``execute_tool {name}`` per call, with ``gen_ai.tool.name`` and the call's arguments and result."""
    return _decorator("tool", fn, name, capture_input, capture_output)
