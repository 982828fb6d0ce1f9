"""Masking rules through the real pipeline (thread worker, real Presidio): JSON, operators, hashing, truncation,
allow-lists, custom recognizers, cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import chatobs
from chatobs.config import ConfigError
from chatobs.core import semconv
from chatobs.processing.masking.masker import Masker, ThreadBackend, truncate
from chatobs.processing.pii.engine import PiiConfig
from chatobs.processing.redaction import hash_user_id
from chatobs.runtime.wiring import get_tracer

from .helpers import exported

pytestmark = pytest.mark.timeout(120)


def _emit(attrs: dict, user_id: str = "user-42") -> None:
    with chatobs.scope(conversation_id="c1", user_id=user_id), get_tracer().start_as_current_span("step") as span:
        span.set_attributes(attrs)


def _one(cap):  # type: ignore[no-untyped-def]
    spans = exported(cap)
    assert len(spans) == 1
    return spans[0]


def test_json_masked_field_by_field_and_stays_valid(make_capture) -> None:
    cap = make_capture(masking_worker="thread")
    value = {
        "customer": {"phone": 4155550132, "email": "ann@example.com", "notes": ["card 5555 5555 5555 4444"]},
        "count": 3,
        "flag": True,
        "nothing": None,
        "émoji": "ça va 👋",
    }
    _emit({semconv.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps(value)})
    out = json.loads(_one(cap).attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS])
    assert out == {
        "customer": {"phone": "<PHONE_NUMBER>", "email": "<EMAIL_ADDRESS>", "notes": ["card <CREDIT_CARD>"]},
        "count": 3,
        "flag": True,
        "nothing": None,
        "émoji": "ça va 👋",
    }


def test_text_that_only_looks_like_json_is_masked_as_text(make_capture) -> None:
    cap = make_capture(masking_worker="thread")
    _emit({semconv.OUTPUT: "[not json] write to ann@example.com"})
    assert _one(cap).attributes[semconv.OUTPUT] == "[not json] write to <EMAIL_ADDRESS>"


def test_no_false_positives_on_code_and_file_names(make_capture) -> None:
    cap = make_capture(masking_worker="thread")
    code = (
        'app.run(host="127.0.0.1", port=8000)  # see main.py, config.yaml; upgrade to v3\n'
        "ts = 1700000000000; version = '2.14.3'; sha = '9fceb02d0ae598e95dc970b74767f19372d61af8'"
    )
    _emit({semconv.GEN_AI_OUTPUT_MESSAGES: code})
    span = _one(cap)
    assert span.attributes[semconv.GEN_AI_OUTPUT_MESSAGES] == code
    assert semconv.REDACTED not in span.attributes


def test_operators_per_entity_and_keyed_hash_correlates(make_capture) -> None:
    cap = make_capture(
        masking_worker="thread", pii_operator="redact,EMAIL_ADDRESS:hash,CREDIT_CARD:mask", hash_secret="k1-test-secret"
    )
    text = "mail ann@example.com, card 4111 1111 1111 1111, ip 203.0.113.9"
    _emit({semconv.INPUT: text})
    _emit({semconv.OUTPUT: "again: ann@example.com; other: bob@example.com"})
    spans = exported(cap)
    first = spans[0].attributes[semconv.INPUT]
    second = spans[1].attributes[semconv.OUTPUT]
    token = first.split()[1].rstrip(",")
    assert token.startswith("<EMAIL_ADDRESS:") and len(token) == len("<EMAIL_ADDRESS:>") + 16
    assert "*******************" in first  # the card, every character masked
    assert first.endswith(", ip ")  # redact removes
    assert second.startswith(f"again: {token};")  # same value, same token: correlates across spans
    assert second.split("other: ")[1] != token


def test_hash_depends_on_the_key(make_capture) -> None:
    assert hash_user_id("aa", "user-1") != hash_user_id("bb", "user-1")
    assert hash_user_id("aa", "user-1") == hash_user_id("aa", "user-1")
    hashed = hash_user_id("aa", "user-1")
    assert hash_user_id("aa", hashed) == hashed  # idempotent: hashing twice changes nothing


def test_user_ids_hashed_when_enabled(make_capture) -> None:
    cap = make_capture(masking_worker="thread", hash_user_ids=True, hash_secret="s3cret-key")
    _emit({"x": 1}, user_id="alice@example.com")
    uid = _one(cap).attributes[semconv.USER_ID]
    assert uid == hash_user_id(b"s3cret-key".hex(), "alice@example.com")
    assert "alice" not in uid


def test_user_ids_kept_by_default(make_capture) -> None:
    cap = make_capture(masking_worker="thread")
    _emit({"x": 1}, user_id="user-7")
    assert _one(cap).attributes[semconv.USER_ID] == "user-7"


def test_truncation_after_masking_with_marker_never_inside_a_token(make_capture) -> None:
    cap = make_capture(masking_worker="thread", max_attribute_length=40)
    text = "x" * 30 + " ann@example.com and more text after it " + "y" * 100
    _emit({semconv.INPUT: text, "app.note": "z" * 100})
    span = _one(cap)
    masked = span.attributes[semconv.INPUT]
    # "<EMAIL_ADDRESS>" would straddle the 40-char cut: the cut moves before the token.
    assert masked.startswith("x" * 30 + " …[truncated ")
    assert "<EMAIL" not in masked
    cut = len(text.replace("ann@example.com", "<EMAIL_ADDRESS>")) - 31
    assert masked.endswith(f"[truncated {cut} chars]")
    assert span.attributes["app.note"] == "z" * 40 + "…[truncated 60 chars]"
    assert set(span.attributes[semconv.TRUNCATED]) == {semconv.INPUT, "app.note"}


def test_truncated_json_stays_valid_json(make_capture) -> None:
    cap = make_capture(masking_worker="thread", max_attribute_length=300)
    msgs = [{"role": "user", "parts": [{"type": "text", "content": f"message {i} " + "blah " * 80}]} for i in range(3)]
    _emit({semconv.GEN_AI_INPUT_MESSAGES: json.dumps(msgs)})
    span = _one(cap)
    value = span.attributes[semconv.GEN_AI_INPUT_MESSAGES]
    assert len(value) <= 300
    parsed = json.loads(value)
    # A history over the limit keeps its newest message (cut, since even it alone is too long), not all three cut.
    assert [m["role"] for m in parsed] == ["user"]
    assert (
        parsed[0]["parts"][0]["content"].startswith("message 2 ") and "[truncated" in parsed[0]["parts"][0]["content"]
    )
    assert semconv.GEN_AI_INPUT_MESSAGES in span.attributes[semconv.TRUNCATED]


def test_a_long_history_keeps_the_system_prompt_and_the_newest_messages_whole(make_capture) -> None:
    cap = make_capture(masking_worker="thread", max_attribute_length=1000)
    msgs = [{"role": "system", "parts": [{"type": "text", "content": "You are ACME's assistant."}]}]
    msgs += [
        {
            "role": "user" if i % 2 else "assistant",
            "parts": [{"type": "text", "content": f"message {i}: " + "words " * 15}],
        }
        for i in range(30)
    ]
    msgs[-1]["parts"][0]["content"] += " mail me at ann@example.com"
    _emit(
        {
            semconv.GEN_AI_INPUT_MESSAGES: json.dumps(msgs),
            semconv.OUTPUT: json.dumps([{"n": i, "text": "x" * 400} for i in range(5)]),
        }
    )
    span = _one(cap)
    parsed = json.loads(span.attributes[semconv.GEN_AI_INPUT_MESSAGES])
    assert len(span.attributes[semconv.GEN_AI_INPUT_MESSAGES]) <= 1000
    assert parsed[0] == msgs[0]  # the system prompt
    kept = parsed[1:]
    assert 3 <= len(kept) < 30 and kept == [
        json.loads(json.dumps(m).replace("ann@example.com", "<EMAIL_ADDRESS>")) for m in msgs[-len(kept) :]
    ]
    assert not any("[truncated" in m["parts"][0]["content"] for m in parsed)  # whole messages, none cut short
    # An array that is not chat messages is cut string by string, as before.
    other = json.loads(span.attributes[semconv.OUTPUT])
    assert len(other) == 5 and all("[truncated" in o["text"] for o in other)


def test_truncate_helper() -> None:
    assert truncate("abc", 5) == "abc"
    assert truncate("abcdef", 3) == "abc…[truncated 3 chars]"
    assert truncate("ab <SECRET> cd", 6) == "ab …[truncated 11 chars]"
    assert truncate("ab <US_SSN:0a1b> cd", 10) == "ab …[truncated 16 chars]"


def test_allow_list(make_capture) -> None:
    cap = make_capture(masking_worker="thread", pii_allow_list="support@acme.example")
    _emit({semconv.OUTPUT: "write to support@acme.example, not to ann@example.com; server 127.0.0.1"})
    assert (
        _one(cap).attributes[semconv.OUTPUT]
        == "write to support@acme.example, not to <EMAIL_ADDRESS>; server 127.0.0.1"
    )


def test_entities_setting_limits_what_is_masked(make_capture) -> None:
    cap = make_capture(masking_worker="thread", pii_entities="EMAIL_ADDRESS")
    _emit({semconv.OUTPUT: "ann@example.com 203.0.113.9"})
    assert _one(cap).attributes[semconv.OUTPUT] == "<EMAIL_ADDRESS> 203.0.113.9"


def test_custom_recognizers_file(make_capture, tmp_path: Path) -> None:
    f = tmp_path / "rec.yaml"
    f.write_text("recognizers:\n  - name: ticket\n    entity: TICKET_ID\n    regex: 'TCK-\\d{6}'\n    score: 0.8\n")
    cap = make_capture(masking_worker="thread", pii_recognizers_file=str(f))  # default entities + the file's
    _emit({semconv.OUTPUT: "ticket TCK-123456 from ann@example.com"})
    assert _one(cap).attributes[semconv.OUTPUT] == "ticket <TICKET_ID> from <EMAIL_ADDRESS>"


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"pii_operator": "replace,EMAIL_ADDRESS:shred"}, "CHATOBS_PII_OPERATOR"),
        ({"pii_operator": "hash"}, "CHATOBS_HASH_SECRET"),
        ({"pii": "ner", "pii_ner_model": "xx_no_such_model_sm"}, "python -m spacy download xx_no_such_model_sm"),
    ],
)
def test_bad_privacy_settings_fail_init_clearly(settings: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        chatobs.init(exporters="none", **settings)
    assert needle in str(err.value)


def test_bad_recognizers_file_fails_init(tmp_path: Path) -> None:
    f = tmp_path / "rec.yaml"
    f.write_text("recognizers:\n  - name: bad\n    entity: X\n    regex: '('\n")
    with pytest.raises(ConfigError, match=r"CHATOBS_PII_RECOGNIZERS_FILE.*bad pattern"):
        chatobs.init(exporters="none", pii_recognizers_file=str(f))


def test_cache_masks_each_distinct_text_once() -> None:
    cfg = PiiConfig()
    masker = Masker(cfg, ThreadBackend(cfg), max_length=0, timeout_s=30)
    history = [("user", "call me at 415-555-0132"), ("assistant", "Sure, noted 415-555-0132.")]
    for turn in range(3):
        history.append(("user", f"turn {turn}: my mail is ann{turn}@example.com"))
        value = json.dumps([{"role": r, "parts": [{"type": "text", "content": t}]} for r, t in history])
        masker.start_batch()
        masker.collect(value)
        masker.resolve()
        masked, changed, _ = masker.mask(value)
        assert changed and "ann" not in masked and "415-555" not in masked
    assert masker.sent == 5  # 3 + 1 + 1: the repeated history came from the caches
    # Resent history messages are remembered whole: they are neither walked again nor looked up text by text.
    assert len(masker._elements) == 5 and masker.cache.hits == 0


def test_precheck_skips_texts_without_candidates() -> None:
    cfg = PiiConfig()
    masker = Masker(cfg, ThreadBackend(cfg), max_length=0, timeout_s=30)
    masker.start_batch()
    masker.collect("What's the difference between a list and a tuple?")
    masker.resolve()
    assert masker.sent == 0
    assert masker.mask("What's the difference between a list and a tuple?")[0].startswith("What's")
