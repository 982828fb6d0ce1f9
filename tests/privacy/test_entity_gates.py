"""Presidio per text runs only what the text can hold (per-entity triggers, libphonenumber only with a context word,
word split only when a finding is enhanced), and finds exactly what the ungated analyzer finds."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.privacy_dataset import load
from chatobs.processing.pii import engine as pii
from chatobs.processing.pii.engine import PiiConfig, PiiEngine, get_engine

pytestmark = pytest.mark.timeout(180)


def _findings(engine: PiiEngine, text: str) -> list[tuple[str, int, int, float]]:
    return sorted((r.entity_type, r.start, r.end, round(r.score, 6)) for r in engine.analyze(text))


def test_gated_findings_equal_the_ungated_analyzer_on_the_evaluation_set() -> None:
    gated = get_engine(PiiConfig())
    # precheck=False turns every gate off: all entities, libphonenumber on every text.
    ungated = get_engine(PiiConfig(precheck=False))
    texts = [r["text"] for r in load()]
    texts += [
        "call me on 030 1234567 tomorrow",  # a national number only libphonenumber knows, lifted by "call"
        "my number: 4155550003",
        "ID 4155550003 in the log",  # libphonenumber's finding stays below the threshold: no context word
    ]
    diffs = [
        (t, _findings(gated, t), _findings(ungated, t)) for t in texts if _findings(gated, t) != _findings(ungated, t)
    ]
    assert diffs == []
    assert sum(1 for t in texts if _findings(gated, t)) > 100  # the set does exercise findings


_CONTEXTS: list[list[str] | None] = [None, ["content"], ["phone number"]]


@pytest.mark.parametrize("nlp", ["tokenizer", "noop"])
def test_findings_equal_presidios_own_analyze_on_the_evaluation_set(nlp: str) -> None:
    """chatobs's loop (recognizers run directly, context enhanced in place, libphonenumber left out where no context
    word can lift it) against Presidio's ``AnalyzerEngine.analyze`` with every enabled entity."""
    engine = get_engine(PiiConfig(nlp=nlp))
    texts = [r["text"] for r in load()]
    texts += [
        "4155550003 call",  # the context word after the digits: libphonenumber's finding stays below
        "call\n4155550003",
        "phone:4155550003",
        "İstanbul office, call 0212 555 01 23",  # lower() lengthens "İ": the positional gate steps aside
    ]

    def reference(text: str, ctx: list[str] | None) -> list[tuple[str, int, int, float]]:
        return sorted(
            (r.entity_type, r.start, r.end, round(r.score, 6)) for r in engine.analyze_with_presidio(text, ctx)
        )

    def ours(text: str, ctx: list[str] | None) -> list[tuple[str, int, int, float]]:
        return sorted((r.entity_type, r.start, r.end, round(r.score, 6)) for r in engine.analyze(text, ctx))

    diffs = [(t, c) for t in texts for c in _CONTEXTS if ours(t, c) != reference(t, c)]
    assert diffs == []
    # libphonenumber's finding, lifted by "call" among the words (noop NLP: no words, only a field name lifts it).
    lifted = [("PHONE_NUMBER", 5, 15, 0.65)]
    assert ours("call 4155550003", None) == (lifted if nlp == "tokenizer" else [])
    assert ours("call 4155550003", ["phone"]) == lifted


def test_only_the_triggered_entities_are_analyzed(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = get_engine(PiiConfig())
    assert engine.entities_for("write to ann@example.org please") == ["EMAIL_ADDRESS"]
    assert engine.entities_for("What's the difference between a list and a tuple?") == []
    asked: list[Any] = []
    real = engine.analyzer.registry.get_recognizers

    def spy(language: str, entities: Any = None, *args: Any, **kwargs: Any) -> Any:
        found = real(language, entities, *args, **kwargs)
        asked.append(sorted({e for r in found for e in r.supported_entities}))
        return found

    monkeypatch.setattr(engine.analyzer.registry, "get_recognizers", spy)
    assert engine.mask("write to ann@example.org please") == "write to <EMAIL_ADDRESS> please"
    assert asked == [["EMAIL_ADDRESS"]]


def test_libphonenumber_runs_only_when_a_context_word_could_lift_it(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = get_engine(PiiConfig())
    ran: list[str] = []
    (phone,) = [r for r in engine.analyzer.registry.recognizers if type(r).__name__ == "ContextPhoneRecognizer"]
    real = type(phone).__mro__[1].analyze  # Presidio's PhoneRecognizer.analyze, behind chatobs's gate

    def spy(self: Any, text: str, *args: Any, **kwargs: Any) -> Any:
        ran.append(text)
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(type(phone).__mro__[1], "analyze", spy)
    engine.analyze("build 4155550003 finished")
    assert ran == []
    engine.analyze("please call 4155550003")
    assert ran == ["please call 4155550003"]
    engine.analyze("build 4155550003 finished, call me")  # the context word comes after every digit
    assert len(ran) == 1
    engine.analyze("build 4155550003 finished", context=["customer"])  # a field name without a context word
    assert len(ran) == 1
    engine.analyze("build 4155550003 finished", context=["mobile"])  # the field's name can lift it
    assert len(ran) == 2
    engine.analyze("call:4155550003")  # context word and digits in one chunk
    assert len(ran) == 3
    low = get_engine(PiiConfig(score_threshold=0.3))  # its bare score passes: always run
    low.analyze("build 4155550003 finished")
    assert len(ran) == 4


def test_words_are_split_only_for_a_finding_to_enhance(monkeypatch: pytest.MonkeyPatch) -> None:
    from chatobs.processing.pii import words

    calls: list[str] = []
    real = words.words

    def spy(text: str) -> Any:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(words, "words", spy)
    pii.forget_engines()  # the engine binds ``words`` when built
    try:
        engine = get_engine(PiiConfig())
        assert engine.mask("version 1.2.3 build 20240101 of the tool") == "version 1.2.3 build 20240101 of the tool"
        assert calls == []
        assert "<PHONE_NUMBER>" in engine.mask("call me at 415-555-0123")
        assert calls == ["call me at 415-555-0123"]
    finally:
        pii.forget_engines()
