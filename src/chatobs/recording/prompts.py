"""``chatobs.prompt()``: which prompt (name and version) the LLM calls made inside it were built from.

    with chatobs.prompt("support-agent", version="3", variables={"tone": "formal"}):
        client.chat.completions.create(...)          # this LLM span carries gen_ai.prompt.name / .version

    @chatobs.prompt("summarize", version="2")
    def summarize(text): ...

    with chatobs.llm_call(provider="mistral", model="...", prompt=("summarize", "2")): ...

Every LLM span started inside (any adapter, the HTTP-client instrumentation, ``llm_call``) carries
``gen_ai.prompt.name`` (OTel GenAI), ``gen_ai.prompt.version`` (not in the spec yet; what OpenLLMetry and others
write) and the variables as ``chatobs.prompt.variables`` (JSON, masked like any content). The Langfuse exporter adds
what its server reads to link a generation to a prompt; ``chatobs stats`` groups turns by prompt version. The
innermost ``prompt()`` wins; it follows ``await`` and tasks like the chat scope does (a context variable).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from ..core import semconv

__all__ = ["PromptRef", "attributes_for", "current_prompt", "prompt"]

F = TypeVar("F", bound=Callable[..., Any])
_MAX_FIELD = 256


@dataclass(frozen=True, slots=True)
class PromptRef:
    name: str
    version: str | None = None
    variables: Mapping[str, Any] | None = None

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {semconv.GEN_AI_PROMPT_NAME: self.name}
        if self.version is not None:
            attrs[semconv.GEN_AI_PROMPT_VERSION] = self.version
        if self.variables:
            attrs[semconv.PROMPT_VARIABLES] = json.dumps(dict(self.variables), default=str, ensure_ascii=False)
        return attrs


_current: contextvars.ContextVar[PromptRef | None] = contextvars.ContextVar("chatobs_prompt", default=None)


def _ref(name: Any, version: Any = None, variables: Any = None) -> PromptRef:
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_FIELD or not name.isprintable():
        raise ValueError(
            f"prompt name: expected a non-empty printable string of at most {_MAX_FIELD} characters, got {name!r:.80}"
        )
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, (str, int)):
            raise ValueError(f"prompt version: expected a string or an integer, got {type(version).__name__}")
        version = str(version).strip()
        if not version or len(version) > _MAX_FIELD or not version.isprintable():
            raise ValueError(f"prompt version: expected a non-empty printable string, got {version!r:.80}")
    if variables is not None and not isinstance(variables, Mapping):
        raise ValueError(f"prompt variables: expected a mapping of names to values, got {type(variables).__name__}")
    return PromptRef(name.strip(), version, variables)


def as_ref(value: Any) -> PromptRef:
    """``prompt=`` of ``llm_call``: a name, ``(name, version)``, or a :class:`PromptRef`."""
    if isinstance(value, PromptRef):
        return value
    if isinstance(value, tuple) and 1 <= len(value) <= 3:
        return _ref(*value)
    return _ref(value)


def current_prompt() -> PromptRef | None:
    return _current.get()


def attributes_for(explicit: Any = None) -> dict[str, Any]:
    """The prompt attributes an LLM span starts with: ``explicit`` (``prompt=``), else the innermost ``prompt()``."""
    ref = as_ref(explicit) if explicit is not None else _current.get()
    return ref.attributes() if ref is not None else {}


class prompt:  # lower-case: used like a function, chatobs.prompt(...)
    """Context manager and decorator (sync and async functions) naming the prompt of the LLM calls inside.
    Raises ``ValueError`` on a malformed name, version or variables (when called, not when an LLM call runs)."""

    def __init__(self, name: str, version: str | int | None = None, variables: Mapping[str, Any] | None = None) -> None:
        self.ref = _ref(name, version, variables)
        self._tokens: list[contextvars.Token[PromptRef | None]] = []

    def __enter__(self) -> PromptRef:
        self._tokens.append(_current.set(self.ref))
        return self.ref

    def __exit__(self, *exc: object) -> None:
        token = self._tokens.pop()
        try:
            _current.reset(token)
        except ValueError:  # exited in another context than entered: leave that context alone
            pass

    def __call__(self, fn: F) -> F:
        ref = self.ref
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def arun(*args: Any, **kwargs: Any) -> Any:
                with _using(ref):
                    return await fn(*args, **kwargs)

            return arun  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with _using(ref):
                return fn(*args, **kwargs)

        return run  # type: ignore[return-value]


@contextmanager
def _using(ref: PromptRef) -> Iterator[None]:
    token = _current.set(ref)
    try:
        yield
    finally:
        _current.reset(token)
