"""Content stage: the pipeline's first stage, which turns the content snapshots LLM calls took on the request path into
the GenAI content attributes.

On the request path an LLM call only encodes what was sent and received, as is, to one JSON string
(``chatobs.raw.request`` with its shape in ``chatobs.raw.format``; ``chatobs.raw.output`` for ``llm_call``'s reply),
so the app's thread never walks the history. Here each such span gets ``gen_ai.input.messages``,
``gen_ai.system_instructions``, ``gen_ai.tool.definitions`` and ``gen_ai.output.messages`` exactly as the recorder
used to write them, in the same place among the attributes, and the raw keys are removed: every later stage and every
exporter sees the same span as before.

Fail closed: a snapshot that cannot be read loses its raw keys (the span goes on without content) and is counted in
``STATS.events["content_failed"]``; raw keys never pass this stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan

from ..core import semconv
from ..core.guard import log_limited
from ..core.json_text import from_json, to_json
from ..core.spans import attributes_of, with_changes
from ..core.stats import STATS, PipelineStats
from ..recording.instrument.llm import request_content
from ..recording.instrument.messages import normalize_output

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["ContentStage", "build"]

_RAW = semconv.RAW_ATTRIBUTES
_REQUEST_KEYS = (semconv.GEN_AI_INPUT_MESSAGES, semconv.GEN_AI_SYSTEM_INSTRUCTIONS, semconv.GEN_AI_TOOL_DEFINITIONS)


class ContentStage:
    name = "content"
    pass_on_error = False  # never reached in practice (each span is guarded), but a batch with raw keys must not pass

    def __init__(self, *, stats: PipelineStats = STATS) -> None:
        self.stats = stats

    def process(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        out: list[ReadableSpan] = []
        for span in spans:
            attrs = attributes_of(span)
            if semconv.RAW_REQUEST in attrs or semconv.RAW_OUTPUT in attrs or semconv.RAW_FORMAT in attrs:
                span = with_changes(span, attributes=self._converted(attrs))
            out.append(span)
        return out

    def _converted(self, attrs: Mapping[str, Any]) -> dict[str, Any]:
        try:
            fmt = attrs.get(semconv.RAW_FORMAT)
            new: dict[str, Any] = {}
            for key, value in attrs.items():
                if key == semconv.RAW_REQUEST:
                    # In the raw key's place, so the attribute order (and the exported bytes) is what it was.
                    for name, content in zip(_REQUEST_KEYS, request_content(str(fmt), from_json(value)), strict=False):
                        if content:
                            new[name] = to_json(content)
                elif key == semconv.RAW_OUTPUT:
                    output, finish_reason = from_json(value)
                    messages = normalize_output(output, finish_reason)
                    if messages:
                        new[semconv.GEN_AI_OUTPUT_MESSAGES] = to_json(messages)
                elif key != semconv.RAW_FORMAT:
                    new[key] = value
            return new
        except Exception as exc:  # noqa: BLE001 - fail closed: the span goes on without its content
            self.stats.count("content_failed")
            log_limited(
                "content-stage", "chatobs: could not read an LLM call's content (left out): %s", type(exc).__name__
            )
            return {k: v for k, v in attrs.items() if k not in _RAW}

    def flush(self) -> list[ReadableSpan]:
        return []

    def shutdown(self) -> None:
        pass


def build(settings: Settings) -> ContentStage:
    """Always built: spans recorded with content capture off carry no raw keys, and cost nothing here."""
    return ContentStage()
