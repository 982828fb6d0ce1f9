"""Sampling (placeholder until the sampling issue lands): parent-based, keep everything; drop unsampled spans."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Callable

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler

from .. import semconv
from .spans import trace_id_hex

if TYPE_CHECKING:
    from ..config import Settings


def sample_value(key: str) -> float:
    """Deterministic position of ``key`` in [0, 1): the same in every process, so decisions agree across workers."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def sampling_key(span: ReadableSpan, by: str = "conversation") -> str:
    attrs = span.attributes or {}
    if by == "conversation" and attrs.get(semconv.GEN_AI_CONVERSATION_ID):
        return str(attrs[semconv.GEN_AI_CONVERSATION_ID])
    return trace_id_hex(span)


def exporter_filter(settings: "Settings", rate: float) -> Callable[[ReadableSpan], bool]:
    return lambda span: sample_value(sampling_key(span, settings.sample_by)) < rate


def build_sampler(settings: "Settings") -> Sampler:
    return ParentBased(root=ALWAYS_ON)


class DropUnsampled:
    name = "sampling"

    def process(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        return [s for s in spans if s.context is not None and s.context.trace_flags.sampled]

    def flush(self) -> list[ReadableSpan]:
        return []

    def shutdown(self) -> None:
        pass


def build(settings: "Settings") -> DropUnsampled:
    return DropUnsampled()
