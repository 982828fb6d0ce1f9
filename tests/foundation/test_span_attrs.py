"""``set_trusted`` stores exactly what ``Span.set_attributes`` stores; ``attr`` reads exactly what ``getattr`` reads."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from pydantic import BaseModel, ConfigDict

from chatobs.recording.instrument.stainless import attr
from chatobs.recording.span_attrs import set_trusted

CASES: list[dict[str, Any]] = [
    {"a": "x", "b": 1, "c": 2.5, "d": True},
    {"reasons": ["stop", "length"], "seq": ("a",), "ints": [1, 2]},
    {"first": "1", "again": "2", "first_": "3"},
    {"mixed": [1, "a"], "ok": "y"},  # invalid for OTel: the SDK's own path decides
    {"empty": [], "none": None, "bytes": b"abc"},
    {"sub": True, "n": 0},
]


def _pair(limits: SpanLimits | None = None) -> tuple[Any, Any]:
    provider = TracerProvider(span_limits=limits) if limits else TracerProvider()
    tracer = provider.get_tracer("t")
    return tracer.start_span("a", attributes={"first": "0", "k": 1}), tracer.start_span(
        "b", attributes={"first": "0", "k": 1}
    )


@pytest.mark.parametrize("attrs", CASES)
@pytest.mark.parametrize(
    "limits", [None, SpanLimits(max_span_attributes=4), SpanLimits(max_span_attribute_length=2)], ids=str
)
def test_same_attributes_as_the_sdk(attrs: dict[str, Any], limits: SpanLimits | None) -> None:
    sdk, fast = _pair(limits)
    sdk.set_attributes(attrs)
    set_trusted(fast, attrs)
    assert list(fast.attributes.items()) == list(sdk.attributes.items())  # values, types and order
    assert fast.dropped_attributes == sdk.dropped_attributes


def test_ended_span_is_left_alone() -> None:
    sdk, fast = _pair()
    sdk.end()
    fast.end()
    sdk.set_attributes({"late": "x"})
    set_trusted(fast, {"late": "x"})
    assert dict(fast.attributes) == dict(sdk.attributes) == {"first": "0", "k": 1}


def test_non_sdk_span_uses_its_own_api() -> None:
    seen: dict[str, Any] = {}

    class Other:
        def set_attributes(self, attributes: dict[str, Any]) -> None:
            seen.update(attributes)

    set_trusted(Other(), {"a": "b"})
    assert seen == {"a": "b"}


class _Usage(BaseModel):
    model_config = ConfigDict(extra="allow")
    prompt_tokens: int | None = None

    @property
    def doubled(self) -> int:
        return 2 * (self.prompt_tokens or 0)


class _Plain:
    __slots__ = ("x",)

    def __init__(self) -> None:
        self.x = 1


@pytest.mark.parametrize(
    ("obj", "name"),
    [
        (_Usage(prompt_tokens=3), "prompt_tokens"),
        (_Usage(prompt_tokens=3), "doubled"),
        (_Usage(prompt_tokens=3), "input_tokens"),
        (_Usage(prompt_tokens=3, input_tokens=7), "input_tokens"),
        (_Usage.model_construct(), "prompt_tokens"),
        (_Plain(), "x"),
        (_Plain(), "y"),
        (None, "anything"),
    ],
)
def test_attr_reads_what_getattr_reads(obj: Any, name: str) -> None:
    assert attr(obj, name) == getattr(obj, name, None)
    assert attr(obj, name) == getattr(obj, name, None)  # twice: the second answer comes from the class cache
