"""The masker's shortcuts (remembered history messages, arrays parsed from where the last call of a conversation
stopped, size arithmetic instead of re-encoding when cutting JSON to the length limit) must never change what goes
out: every result here is compared with a masker that has seen nothing, or with the plain algorithm they replace.
Real Presidio (thread backend)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from chatobs.processing.masking.masker import (
    Masker,
    ThreadBackend,
    _cap_strings,
    _fit_json,
    _split_array,
    _walk,
    truncate,
)
from chatobs.processing.pii.engine import PiiConfig

pytestmark = pytest.mark.timeout(120)


def _masker(max_length: int) -> Masker:
    cfg = PiiConfig()
    return Masker(cfg, ThreadBackend(cfg), max_length=max_length, timeout_s=30)


class _Plain(Masker):
    """The masker without its shortcuts: arrays parsed whole, new elements only collected, then walked in full."""

    def _draft(self, raw: str, element: Any) -> None:
        _walk(element, None, self._collect_leaf)

    def _split(self, text: str) -> Any:
        return _split_array(text)


def _plain(max_length: int) -> Masker:
    cfg = PiiConfig()
    return _Plain(cfg, ThreadBackend(cfg), max_length=max_length, timeout_s=30)


def _run(masker: Masker, values: list[tuple[str, bool]]) -> list[tuple[Any, bool, bool]]:
    """One pipeline batch: collect the content values, resolve, mask every value."""
    masker.start_batch()
    for value, content in values:
        if content:
            masker.collect(value)
    masker.resolve()
    out = [masker.mask(value, content=content) for value, content in values]
    masker.end_batch()
    return out


def _conversation() -> list[list[tuple[str, bool]]]:
    """Calls of a chat whose history grows: PII, secrets, secret-named fields, long numbers, escapes, non-ASCII."""
    tools = json.dumps([{"type": "function", "function": {"name": "lookup", "parameters": {"api_key": "x"}}}])
    history: list[dict[str, Any]] = [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief. 'Quotes' \"and\" \\ ok"}]}
    ]
    calls = []
    for turn in range(8):
        history.append(
            {
                "role": "user",
                "parts": [
                    {
                        "type": "text",
                        "content": f"turn {turn}: mail ann{turn}@example.com, "
                        f"token sk-{'a' * 24}{turn}, café\nnew line",
                    }
                ],
            }
        )
        calls.append([(json.dumps(history, separators=(",", ":")), True), (tools, False)])
        history.append(
            {
                "role": "assistant",
                "parts": [
                    {
                        "type": "tool_call",
                        "id": f"call_{turn}",
                        "name": "lookup",
                        "arguments": {"phone": 4155550100 + turn, "password": "hunter2"},
                    }
                ],
            }
        )
        history.append(
            {
                "role": "tool",
                "parts": [{"type": "tool_call_response", "id": f"call_{turn}", "response": turn * 1000003}],
            }
        )
        calls.append(
            [
                (json.dumps(history, separators=(",", ":")), True),
                (json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "x" * 300 * turn}]}]), True),
            ]
        )
    return calls


@pytest.mark.parametrize("max_length", [0, 300, 1000, 4000])
def test_remembered_history_masks_exactly_like_a_fresh_masker(max_length: int) -> None:
    warm = _masker(max_length)
    for values in _conversation():
        got = _run(warm, values)
        assert got == _run(_plain(max_length), values)
    assert (
        "ann3@example.com" not in json.dumps(got)
        and "hunter2" not in json.dumps(got)
        and "sk-aaaa" not in json.dumps(got)
    )
    assert len(warm._arrays) == 1  # the history: one entry per conversation, replaced as it grows


def test_an_extended_history_of_another_shape_is_parsed_from_scratch() -> None:
    masker = _masker(0)
    first = "[" + ", ".join(json.dumps({"n": i, "text": "call 415-555-0132"}) for i in range(40)) + ", 1"
    for text in (first + "]", first + "2]", first + " , 415555013299]", first + "]  ", first + "] x"):
        expected = _run(_plain(0), [(text, True)])
        assert _run(masker, [(text, True)]) == expected
    assert _run(masker, [(first + "2]", True)])[0][0].endswith(", 12]")


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        " [ ] ",
        "[1]",
        "[1,2 , 3]",
        '[{"a": [1, {"b": "c"}]}, "x", null, true, 1.5e3, -0]',
        ' \n[ "a" ,\t"b" ]\r\n',
        "[1,]",
        "[1 2]",
        "[",
        "[1",
        "[1]]",
        "[1] x",
        "{}",
        "",
        "x",
        '["\\ud83d"]',
        "[NaN, Infinity, -Infinity]",
        "\u00a0[1]",
        "\ufeff[1]",
        '[1, "unterminated]',
    ],
)
def test_split_array_agrees_with_json_loads(text: str) -> None:
    try:
        expected = json.loads(text)
    except ValueError:
        expected = None
    got = _split_array(text)
    if not isinstance(expected, list):
        assert got is None
        return
    assert got is not None
    assert [json.dumps(v) for _, v in got] == [json.dumps(v) for v in expected]
    for raw, value in got:
        assert json.dumps(json.loads(raw)) == json.dumps(value)


def _fit_reference(obj: Any, limit: int) -> str:
    """The plain algorithm: binary search on the string cap, building and encoding each candidate."""

    def longest(o: Any) -> int:
        if isinstance(o, str):
            return len(o)
        if isinstance(o, dict):
            return max((longest(v) for v in o.values()), default=0)
        if isinstance(o, list):
            return max((longest(v) for v in o), default=0)
        return 0

    lo, hi, best = 0, longest(obj), None
    while lo <= hi:
        mid = (lo + hi) // 2
        s = json.dumps(_cap_strings(obj, mid), ensure_ascii=False)
        if len(s) <= limit:
            best, lo = s, mid + 1
        else:
            hi = mid - 1
    return best if best is not None else truncate(json.dumps(obj, ensure_ascii=False), limit)


def test_fit_json_equals_the_plain_search() -> None:
    rng = random.Random(7)
    pieces = [
        "a",
        "é",
        "👋",
        "\ud83d\ude00",
        "\ud83d",
        '"',
        "\\",
        "\n",
        "\x01",
        "<EMAIL_ADDRESS>",
        "<chatobs: x>",
        " ",
        "7",
    ]

    def text() -> str:
        return "".join(rng.choice(pieces) for _ in range(rng.choice([0, 1, 5, 40, 200, 900])))

    def value(depth: int) -> Any:
        kind = rng.random()
        if depth > 2 or kind < 0.4:
            return text()
        if kind < 0.5:
            return rng.choice([None, True, 3, 2.5, 10**12])
        if kind < 0.75:
            return [value(depth + 1) for _ in range(rng.randint(0, 5))]
        return {f"k{i}": value(depth + 1) for i in range(rng.randint(0, 5))}

    for _ in range(300):
        obj = [value(0) for _ in range(rng.randint(1, 6))]
        encoded = json.dumps(obj, ensure_ascii=False)
        for limit in (0, 20, 100, 500, 2000):
            if len(encoded) <= limit:
                continue
            assert _fit_json(obj, limit) == _fit_reference(obj, limit)
            assert _fit_json(obj, limit, encoded=encoded) == _fit_reference(obj, limit)
