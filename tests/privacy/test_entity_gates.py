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
    engine.analyze("build 4155550003 finished", context=["customer"])  # external context: always run
    assert len(ran) == 2
    low = get_engine(PiiConfig(score_threshold=0.3))  # its bare score passes: always run
    low.analyze("build 4155550003 finished")
    assert len(ran) == 3


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
