"""W3C Trace Context parsing, with the cases of the W3C test suite that OTel's propagator gets wrong."""

from __future__ import annotations

import re

import pytest
from opentelemetry import baggage, trace

from chatobs.recording.middleware.tracecontext import extract, parse_traceparent, parse_tracestate

TID = "12345678901234567890123456789012"
VALID = f"00-{TID}-1234567890123456-01"
SUITE_TRACESTATES = [
    "foo=1,bar=2",
    "foo =1",
    "FOO=1",
    "foo.bar=1",
    "foo@=1,bar=2",
    "@foo=1,bar=2",
    "foo@@bar=1,bar=2",
    "foo@bar@baz=1,bar=2",
    "foo=bar=baz",
    "foo=,bar=3",
    "foo=1,foo=1",
    "foo=1,foo=2",
    "z" * 257 + "=1",
    "t" * 241 + "@" + "v" * 14 + "=1",
    "t" * 242 + "@v=1",
    "t@" + "v" * 15 + "=1",
    "foo=1 \t , \t bar=2, \t baz=3",
]


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


@pytest.mark.parametrize(
    "value",
    [f"cc-{TID}-1234567890123456-01", f"cc-{TID}-1234567890123456-01-what-the-future-will-be-like", f" \t{VALID} \t"],
)
def test_future_versions_and_ows_accepted(value: str) -> None:
    sc = parse_traceparent([value])
    assert sc is not None and format(sc.trace_id, "032x") == TID


def test_duplicated_traceparent_is_invalid() -> None:
    assert parse_traceparent([VALID, f"00-{TID[:-1]}1-1234567890123456-01"]) is None
    assert parse_traceparent([VALID, VALID]) is None


def test_tracestate_combined_in_order() -> None:
    ts = parse_tracestate(["foo=1,bar=2", "rojo=1,congo=2", "baz=3"])
    assert list(ts.keys()) == ["foo", "bar", "rojo", "congo", "baz"]


def test_tracestate_with_an_invalid_member_is_discarded_whole() -> None:
    for header in [
        "foo =1,good=2",
        "FOO=1,good=2",
        "foo.bar=1,good=2",
        "@x=1,good=2",
        "foo=bar=baz",
        "foo=,bar=3",
        "good=2,x=1\n",
    ]:
        assert len(parse_tracestate([header])) == 0, header
    assert len(parse_tracestate(["good=1", "z" * 257 + "=1"])) == 0


def test_tracestate_duplicate_keys_passed_on_once() -> None:
    assert dict(parse_tracestate(["foo=1,foo=2,bar=3"])) == {"foo": "1", "bar": "3"}
    assert dict(parse_tracestate(["foo=1", "foo=1", "bar=3"])) == {"foo": "1", "bar": "3"}


def test_tracestate_keys_of_the_current_grammar() -> None:
    """Keys the W3C suite accepts since its key-grammar fix: '@' anywhere after the first character, 256 at most."""
    for key in [
        "foo@",
        "foo@@bar",
        "foo@bar@baz",
        "z" * 256,
        "t" * 241 + "@" + "v" * 14,
        "t" * 242 + "@v",
        "t@" + "v" * 15,
        "0tenant@sys",
    ]:
        ts = parse_tracestate(["foo=1", key + "=1"])
        assert dict(ts) == {"foo": "1", key: "1"}, key
        assert ts.to_header() == f"foo=1,{key}=1"  # and they are written out again (OTel's TraceState would drop them)


def test_tracestate_newer_key_grammar_and_all_characters() -> None:
    key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
    value = (
        "".join(map(chr, range(0x20, 0x2C)))
        + "".join(map(chr, range(0x2D, 0x3D)))
        + "".join(map(chr, range(0x3E, 0x7F)))
    )
    assert parse_tracestate([f"{key}={value}"])[key] == value
    assert parse_tracestate([f"{key}@a-z0-9_-*/={value}"])[f"{key}@a-z0-9_-*/"] == value
    assert parse_tracestate(["0tenant@sys=1"])["0tenant@sys"] == "1"  # tenant may start with a digit


def test_otel_accepts_nothing_the_spec_refuses() -> None:
    """OTel's ``TraceState.from_header`` (the parser OTel's own propagator uses wherever chatobs's strict one is not
    installed) keeps a member list only if the spec accepts it too, over the suite's cases and random ones; it
    refuses more (the older key grammar, duplicates), which loses state but never lets an invalid member out."""
    import logging
    import random

    from opentelemetry.trace import TraceState

    def spec_members(headers: list[str]) -> dict[str, str] | None:
        out: dict[str, str] = {}
        for m in ",".join(headers).split(","):
            m = m.strip(" \t")
            if not m:
                continue
            k, sep, v = m.partition("=")
            if (
                not sep
                or not re.fullmatch(r"[a-z0-9][a-z0-9_\-*/@]{0,255}", k)
                or not re.fullmatch(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]", v)
            ):
                return None
            out.setdefault(k, v)
        return out

    rng = random.Random(14)
    alphabet = "ab0@=, \t\n\r\x0b1Z.*/_-\x00\x7f\xe9~"
    cases = [[h] for h in SUITE_TRACESTATES] + [
        ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10)))] for _ in range(20000)
    ]
    logging.disable(logging.WARNING)  # OTel logs every refusal
    try:
        for headers in cases:
            ts = TraceState.from_header(headers)
            if len(ts):
                spec = spec_members(headers)
                assert spec is not None and dict(ts) == spec, headers
    finally:
        logging.disable(logging.NOTSET)


def test_tracestate_member_limit_and_empty() -> None:
    assert len(parse_tracestate([",".join(f"k{i}=v" for i in range(32))])) == 32
    assert len(parse_tracestate([",".join(f"k{i}=v" for i in range(33))])) == 0
    assert len(parse_tracestate([",".join(["k=v"] * 33)])) == 0  # 33 members, even if one key
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


# --- The W3C suite's tracestate cases, end to end ------------------------------------------------------------------
# As the suite's harness does: send headers to a service (a Starlette app with ChatObsMiddleware under uvicorn), which
# calls back an endpoint with OTel's standard propagator; the callback's headers are what the service passed on.

_TP = f"00-{TID}-1234567890123456-00"
_HARNESS_MEMBER = re.compile(
    r"([0-9a-z][_0-9a-z\-*/@]{0,255})=([\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e])"
)


def _harness_tracestate(headers: list[list[str]]) -> dict[str, str]:
    """The suite's ``Tracestate.from_string`` over every tracestate header: an illegal member fails the case."""
    out: dict[str, str] = {}
    for name, value in headers:
        if name.lower() != "tracestate":
            continue
        for member in re.split(r"[ \t]*,[ \t]*", value):
            if member:
                m = _HARNESS_MEMBER.fullmatch(member)
                assert m is not None, f"service passed on an illegal member {member!r}"
                out.setdefault(m.group(1), m.group(2))
    return out


def _harness_traceparent(headers: list[list[str]]) -> str:
    values = [v for k, v in headers if k.lower() == "traceparent"]
    assert len(values) == 1, values
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", values[0]), values[0]
    return values[0]


@pytest.fixture
def w3c_service(capture, uvicorn_server):  # type: ignore[no-untyped-def]
    """A function sending headers through the service and returning (traceparent, tracestate) it passed on."""
    import httpx
    from opentelemetry import propagate
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    import chatobs

    async def callback(request: Request) -> JSONResponse:
        return JSONResponse(request.headers.items())

    async def service(request: Request) -> JSONResponse:
        url = (await request.json())["url"]
        headers: dict[str, str] = {}
        propagate.inject(headers)  # the standard global propagator, as any instrumented client uses it
        async with httpx.AsyncClient(timeout=5) as client:
            r = await client.post(url, headers=headers, json=[])
        return JSONResponse(r.json())

    echo = uvicorn_server(Starlette(routes=[Route("/cb", callback, methods=["POST"])]))
    app = Starlette(routes=[Route("/test", service, methods=["POST"])])
    app.add_middleware(chatobs.ChatObsMiddleware)
    base = uvicorn_server(app)

    def send(headers: list[list[str]]) -> tuple[str, dict[str, str]]:
        # http.client, not httpx: h11 refuses to send a value with leading/trailing whitespace, the suite sends them.
        import http.client
        import json

        conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=10)
        try:
            body = json.dumps({"url": f"{echo}/cb"}).encode()
            conn.putrequest("POST", "/test")
            for key, value in [*headers, ["Content-Type", "application/json"], ["Content-Length", str(len(body))]]:
                conn.putheader(key, value)
            conn.endheaders(body)
            r = conn.getresponse()
            text = r.read()
        finally:
            conn.close()
        assert r.status == 200, text
        passed_on = json.loads(text)
        return _harness_traceparent(passed_on), _harness_tracestate(passed_on)

    return send


def _tid(traceparent: str) -> str:
    return traceparent.split("-")[1]


_KEY_CASES = ["z" * 256, "t" * 241 + "@" + "v" * 14, "t" * 242 + "@v", "t@" + "v" * 15]
_MEMBERS = [
    "bar01=01,bar02=02,bar03=03,bar04=04,bar05=05,bar06=06,bar07=07,bar08=08,bar09=09,bar10=10",
    "bar11=11,bar12=12,bar13=13,bar14=14,bar15=15,bar16=16,bar17=17,bar18=18,bar19=19,bar20=20",
    "bar21=21,bar22=22,bar23=23,bar24=24,bar25=25,bar26=26,bar27=27,bar28=28,bar29=29,bar30=30",
]
_ALL_KEY = "".join(map(chr, range(0x61, 0x7B))) + "0123456789_-*/"
_ALL_VALUE = (
    "".join(map(chr, range(0x20, 0x2C))) + "".join(map(chr, range(0x2D, 0x3D))) + "".join(map(chr, range(0x3E, 0x7F)))
)

# (suite test, headers sent, what the passed-on tracestate must hold: a dict of required members, or None = absent keys)
SUITE_CASES: list[tuple[str, list[list[str]], dict[str, str], set[str]]] = [
    (
        "included_traceparent_included",
        [["traceparent", _TP], ["tracestate", "foo=1,bar=2"]],
        {"foo": "1", "bar": "2"},
        set(),
    ),
    ("header_name trace-state", [["traceparent", _TP], ["trace-state", "foo=1"]], {}, {"foo"}),
    ("header_name trace.state", [["traceparent", _TP], ["trace.state", "foo=1"]], {}, {"foo"}),
    *[
        (f"header_name_valid_casing {n}", [["traceparent", _TP], [n, "foo=1"]], {"foo": "1"}, set())
        for n in ("TraceState", "TrAcEsTaTe", "TRACESTATE")
    ],
    ("empty_header", [["traceparent", _TP], ["tracestate", ""]], {}, set()),
    ("empty_header after", [["traceparent", _TP], ["tracestate", "foo=1"], ["tracestate", ""]], {"foo": "1"}, set()),
    ("empty_header before", [["traceparent", _TP], ["tracestate", ""], ["tracestate", "foo=1"]], {"foo": "1"}, set()),
    ("duplicated_keys same", [["traceparent", _TP], ["tracestate", "foo=1,foo=1"]], {"foo": "1"}, set()),
    ("duplicated_keys differ", [["traceparent", _TP], ["tracestate", "foo=1,foo=2"]], {"foo": "1"}, set()),
    (
        "duplicated_keys headers same",
        [["traceparent", _TP], ["tracestate", "foo=1"], ["tracestate", "foo=1"]],
        {"foo": "1"},
        set(),
    ),
    (
        "duplicated_keys headers differ",
        [["traceparent", _TP], ["tracestate", "foo=1"], ["tracestate", "foo=2"]],
        {"foo": "1"},
        set(),
    ),
    (
        "all_allowed_characters",
        [["traceparent", _TP], ["tracestate", f"{_ALL_KEY}={_ALL_VALUE}"]],
        {_ALL_KEY: _ALL_VALUE},
        set(),
    ),
    (
        "all_allowed_characters vendor",
        [["traceparent", _TP], ["tracestate", f"{_ALL_KEY}@a-z0-9_-*/={_ALL_VALUE}"]],
        {f"{_ALL_KEY}@a-z0-9_-*/": _ALL_VALUE},
        set(),
    ),
    *[
        (f"ows_handling {i}", [["traceparent", _TP], ["tracestate", v]], {"foo": "1", "bar": "2", "baz": "3"}, set())
        for i, v in enumerate(["foo=1 \t , \t bar=2, \t baz=3", "foo=1\t \t,\t \tbar=2,\t \tbaz=3"])
    ],
    *[
        (f"ows_handling single {v!r}", [["traceparent", _TP], ["tracestate", v]], {"foo": "1"}, set())
        for v in [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"]
    ],
    *[
        (
            f"key_illegal_characters {v!r}",
            [["traceparent", _TP], ["tracestate", v]],
            {},
            {"foo ", "FOO", "foo.bar", "foo"},
        )
        for v in ["foo =1", "FOO=1", "foo.bar=1"]
    ],
    *[
        (
            f"key_illegal_vendor_format {k}",
            [["traceparent", _TP], ["tracestate", f"{k}=1,bar=2"]],
            {k: "1", "bar": "2"},
            set(),
        )
        for k in ["foo@", "foo@@bar", "foo@bar@baz"]
    ],
    ("key_illegal_vendor_format @foo", [["traceparent", _TP], ["tracestate", "@foo=1,bar=2"]], {}, {"bar"}),
    (
        "member_count_limit 32",
        [["traceparent", _TP], *[["tracestate", m] for m in _MEMBERS], ["tracestate", "bar31=31,bar32=32"]],
        {f"bar{i:02d}": f"{i:02d}" for i in range(1, 33)},
        set(),
    ),
    (
        "member_count_limit 33",
        [["traceparent", _TP], *[["tracestate", m] for m in _MEMBERS], ["tracestate", "bar31=31,bar32=32,bar33=33"]],
        {},
        {"bar01"},
    ),
    *[
        (
            f"key_length_limit {len(k)}:{k.find('@')}",
            [["traceparent", _TP], ["tracestate", "foo=1"], ["tracestate", k + "=1"]],
            {"foo": "1", k: "1"},
            set(),
        )
        for k in _KEY_CASES
    ],
    (
        "key_length_limit 257",
        [["traceparent", _TP], ["tracestate", "foo=1"], ["tracestate", "z" * 257 + "=1"]],
        {},
        {"foo"},
    ),
    ("value_illegal_characters foo=bar=baz", [["traceparent", _TP], ["tracestate", "foo=bar=baz"]], {}, {"foo"}),
    ("value_illegal_characters foo=,bar=3", [["traceparent", _TP], ["tracestate", "foo=,bar=3"]], {}, {"foo", "bar"}),
]


@pytest.mark.parametrize(("name", "headers", "kept", "absent"), SUITE_CASES, ids=[c[0] for c in SUITE_CASES])
def test_w3c_suite_tracestate_case(
    w3c_service, name: str, headers: list[list[str]], kept: dict[str, str], absent: set[str]
) -> None:  # type: ignore[no-untyped-def]
    traceparent, tracestate = w3c_service(headers)
    assert _tid(traceparent) == TID and traceparent.split("-")[2] != "1234567890123456"
    for key, value in kept.items():
        assert tracestate.get(key) == value, (key, tracestate)
    assert not absent & tracestate.keys(), tracestate
    if name == "member_count_limit 32":
        assert len(tracestate) == 32


def test_w3c_suite_tracestate_without_traceparent(w3c_service) -> None:  # type: ignore[no-untyped-def]
    """test_tracestate_included_traceparent_missing: discarded, so one member or two sent make no difference."""
    tp1, ts1 = w3c_service([["tracestate", "foo=1"]])
    tp2, ts2 = w3c_service([["tracestate", "foo=1,bar=2"]])
    assert len(ts1) == len(ts2) == 0 and _tid(tp1) != _tid(tp2)


def test_w3c_suite_duplicated_keys_ordered_multi_header(w3c_service) -> None:  # type: ignore[no-untyped-def]
    """test_tracestate_multiple_headers_different_keys: combined in order."""
    _, ts = w3c_service(
        [["traceparent", _TP], ["tracestate", "foo=1,bar=2"], ["tracestate", "rojo=1,congo=2"], ["tracestate", "baz=3"]]
    )
    assert list(ts.items()) == [("foo", "1"), ("bar", "2"), ("rojo", "1"), ("congo", "2"), ("baz", "3")]
