"""W3C Trace Context parsing, with the cases of the W3C test suite that OTel's propagator gets wrong."""

from __future__ import annotations

import pytest
from opentelemetry import baggage, trace

from chatobs.middleware.tracecontext import extract, parse_traceparent, parse_tracestate

TID = "12345678901234567890123456789012"
VALID = f"00-{TID}-1234567890123456-01"


def test_valid_traceparent() -> None:
    sc = parse_traceparent([VALID])
    assert sc is not None and format(sc.trace_id, "032x") == TID and sc.trace_flags.sampled and sc.is_remote


@pytest.mark.parametrize(
    "value",
    [
        f"00-{TID}-1234567890123456-01.",
        f"00-{TID}-1234567890123456-01-what-the-future-will-be-like",
        f"ff-{TID}-1234567890123456-01",
        f".0-{TID}-1234567890123456-01",
        f"000-{TID}-1234567890123456-01",
        f"0-{TID}-1234567890123456-01",
        "00-00000000000000000000000000000000-1234567890123456-01",
        f"00-{TID}-0000000000000000-01",
        "00-.2345678901234567890123456789012-1234567890123456-01",
        f"00-{TID}3-1234567890123456-01",
        f"00-{TID[:-1]}-1234567890123456-01",
        f"00-{TID}-12345678901234567-01",
        f"00-{TID}-1234567890123456-.0",
        f"00-{TID}-1234567890123456-001",
        f"00-{TID}-1234567890123456-1",
        f"00-{TID.upper()[:-1]}A-1234567890123456-01",
        f"cc-{TID}-1234567890123456-01.what-the-future-will-be-like",
        "",
        "x" * 10000,
    ],
)
def test_invalid_traceparent_starts_new_trace(value: str) -> None:
    assert parse_traceparent([value]) is None


@pytest.mark.parametrize("value", [f"cc-{TID}-1234567890123456-01", f"cc-{TID}-1234567890123456-01-what-the-future-will-be-like", f" \t{VALID} \t"])
def test_future_versions_and_ows_accepted(value: str) -> None:
    sc = parse_traceparent([value])
    assert sc is not None and format(sc.trace_id, "032x") == TID


def test_duplicated_traceparent_is_invalid() -> None:
    assert parse_traceparent([VALID, f"00-{TID[:-1]}1-1234567890123456-01"]) is None
    assert parse_traceparent([VALID, VALID]) is None


def test_tracestate_combined_in_order() -> None:
    ts = parse_tracestate(["foo=1,bar=2", "rojo=1,congo=2", "baz=3"])
    assert list(ts.keys()) == ["foo", "bar", "rojo", "congo", "baz"]


def test_tracestate_invalid_entries_dropped_valid_kept() -> None:
    ts = parse_tracestate(["foo =1,FOO=1,foo.bar=1,good=2,@x=1,ok@vendor=3"])
    assert dict(ts) == {"good": "2", "ok@vendor": "3"}


def test_tracestate_duplicate_keys_dropped() -> None:
    assert "foo" not in parse_tracestate(["foo=1,foo=2,bar=3"])
    assert dict(parse_tracestate(["foo=1", "foo=1", "bar=3"])) == {"bar": "3"}


def test_tracestate_newer_key_grammar_and_all_characters() -> None:
    key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
    value = "".join(map(chr, range(0x20, 0x2C))) + "".join(map(chr, range(0x2D, 0x3D))) + "".join(map(chr, range(0x3E, 0x7F)))
    assert parse_tracestate([f"{key}={value}"])[key] == value
    assert parse_tracestate([f"{key}@a-z0-9_-*/={value}"])[f"{key}@a-z0-9_-*/"] == value
    assert parse_tracestate(["0tenant@sys=1"])["0tenant@sys"] == "1"  # tenant may start with a digit


def test_tracestate_member_limit_and_empty() -> None:
    assert len(parse_tracestate([",".join(f"k{i}=v" for i in range(32))])) == 32
    assert len(parse_tracestate([",".join(f"k{i}=v" for i in range(33))])) == 0
    assert len(parse_tracestate([""])) == 0
    assert dict(parse_tracestate(["foo=1", ""])) == {"foo": "1"}
    assert dict(parse_tracestate([" \tfoo=1 \t , \t bar=2"])) == {"foo": "1", "bar": "2"}


def test_extract_builds_parent_and_baggage() -> None:
    ctx = extract([VALID], ["foo=1"], ["a=1", "b=2"])
    sc = trace.get_current_span(ctx).get_span_context()
    assert format(sc.trace_id, "032x") == TID and sc.trace_state["foo"] == "1"
    assert baggage.get_all(ctx) == {"a": "1", "b": "2"}


def test_tracestate_without_traceparent_is_discarded() -> None:
    ctx = extract([], ["foo=1"], [])
    assert not trace.get_current_span(ctx).get_span_context().is_valid
