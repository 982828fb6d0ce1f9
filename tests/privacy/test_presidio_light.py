"""Pattern mode without spaCy and without presidio-anonymizer gives exactly the masking it gave with them.

- ``words.py`` splits text like spaCy's blank English tokenizer (the words Presidio's context enhancer looks at);
- the analyzer with ``words.py`` finds exactly what it found with spaCy's tokenizer;
- ``replace.py`` replaces found entities exactly as presidio-anonymizer's engine did (a test-only dependency here);
- the masking worker builds pattern mode with spaCy's placeholders (``nospacy.py``) and masks the same.
"""

from __future__ import annotations

import pytest

from benchmarks.privacy_dataset import SEED, generate, load
from chatobs.processing.masking.worker import ProcessBackend
from chatobs.processing.pii.engine import PiiConfig, PiiEngine
from chatobs.processing.pii.words import words

pytestmark = pytest.mark.timeout(300)

_EXTRA = [
    "call me at 4155550132 please",
    "my phone: 4155550132",
    "ssn 123456789",
    "I can't, don't text 415 555 0132",
    "Dr. Smith's number is (555) 123-4567 x22; mail bob@example-mail.com.",
    "see https://x.io/a?b=1 or www.y.com/z",
    "wallet 0x52908400098527886E0F7030069857D2E4169EE7 send",
    "5pm: call +44 (0)20 7946 0958",
    "id 078-05-1120",
]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [r["text"] for r in load()] + [r["text"] for r in generate(seed=SEED + 2)] + _EXTRA


def _words(pairs: object) -> list[tuple[int, str]]:
    return [(i, w) for i, w in pairs if any(c.isalnum() for c in w)]  # type: ignore[attr-defined]


def test_words_match_spacy_tokenizer(texts: list[str]) -> None:
    spacy = pytest.importorskip("spacy")  # installed with presidio-analyzer; the reference, not used by chatobs here
    tok = spacy.blank("en").tokenizer
    differ = [t for t in texts if _words(words(t)) != _words((x.idx, x.text) for x in tok(t))]
    assert differ == []


@pytest.mark.parametrize("overrides", [{}, {"precheck": False, "score_threshold": 0.1}])
def test_same_detections_as_with_spacy_tokenizer(texts: list[str], overrides: dict[str, object]) -> None:
    ours, ref = PiiEngine(PiiConfig(**overrides)), PiiEngine(PiiConfig(nlp="spacy", **overrides))  # type: ignore[arg-type]
    for t in texts:
        assert sorted((r.entity_type, r.start, r.end, r.score) for r in ours.analyze(t)) == sorted(
            (r.entity_type, r.start, r.end, r.score) for r in ref.analyze(t)
        ), t


def test_replacement_matches_presidio_anonymizer(texts: list[str]) -> None:
    anonymizer = pytest.importorskip("presidio_anonymizer")  # requirements-dev.txt: the reference only
    from presidio_anonymizer.entities import OperatorConfig

    engine = PiiEngine(
        PiiConfig(
            default_operator="mask",
            operators=(("EMAIL_ADDRESS", "hash"), ("PHONE_NUMBER", "redact")),
            hash_key="00ff" * 8,
            score_threshold=0.1,
            precheck=False,
        )
    )
    ops = {
        "EMAIL_ADDRESS": OperatorConfig("custom", {"lambda": lambda v: engine._replacement("EMAIL_ADDRESS", v)}),
        "PHONE_NUMBER": OperatorConfig("redact", {}),
        "DEFAULT": OperatorConfig("mask", {"masking_char": "*", "chars_to_mask": 10_000, "from_end": False}),
    }
    ref = anonymizer.AnonymizerEngine()
    changed = 0
    for t in texts:
        found = engine.analyze(t)
        expected = ref.anonymize(text=t, analyzer_results=found, operators=ops).text
        assert engine.mask(t) == expected, t
        changed += expected != t
    assert changed > 500  # the comparison covered real replacements, overlaps included


def test_overlapping_and_spaced_entities_like_presidio() -> None:
    anonymizer = pytest.importorskip("presidio_anonymizer")
    from presidio_anonymizer.entities import RecognizerResult

    from chatobs.processing.pii.replace import replace_entities

    text = "aaaa bbbb cccc dddd eeee"
    cases = [
        [RecognizerResult("A", 0, 9, 0.5), RecognizerResult("B", 5, 14, 0.6)],  # different types overlapping
        [RecognizerResult("A", 0, 4, 0.5), RecognizerResult("A", 5, 9, 0.6)],  # one space apart: merged
        [RecognizerResult("A", 0, 9, 0.5), RecognizerResult("A", 5, 14, 0.9), RecognizerResult("B", 5, 9, 0.99)],
        [RecognizerResult("A", 0, 4, 0.5), RecognizerResult("B", 0, 4, 0.5), RecognizerResult("C", 15, 24, 0.1)],
    ]
    for results in cases:
        expected = anonymizer.AnonymizerEngine().anonymize(text=text, analyzer_results=results).text
        assert replace_entities(text, results, lambda e, v: f"<{e}>") == expected, results


def test_worker_runs_pattern_mode_without_spacy_and_masks_the_same(texts: list[str]) -> None:
    backend = ProcessBackend(PiiConfig())
    try:
        assert backend.wait_ready(120)
        assert backend.spacy_loaded is False
        sample = texts[:400] + _EXTRA
        out = backend.mask_many([(t, None) for t in sample], timeout_s=120)
        ref = PiiEngine(PiiConfig(nlp="spacy"))
        assert out == [ref.mask(t) for t in sample]
    finally:
        backend.stop()


def test_worker_loads_spacy_for_the_reference_tokenizer() -> None:
    # The other branch of the same switch: a configuration that needs spaCy gets the real one.
    backend = ProcessBackend(PiiConfig(nlp="spacy"))
    try:
        assert backend.wait_ready(120)
        assert backend.spacy_loaded is True
        assert backend.mask_many([("mail ann@example.com", None)], 30) == ["mail <EMAIL_ADDRESS>"]
    finally:
        backend.stop()


def test_worker_falls_back_to_real_spacy_when_placeholders_fall_short() -> None:
    # Stands in for a future Presidio importing a spaCy name the placeholders lack: the engine is built again with
    # the real spaCy and still masks.
    import subprocess
    import sys

    from ..conftest import subprocess_env

    code = (
        "from chatobs.processing.masking import worker as masking_worker\n"
        "from chatobs.processing.pii import nospacy\n"
        "from chatobs.processing.pii.engine import PiiConfig\n"
        "del nospacy._NAMES['spacy.vocab']\n"
        "engine, loaded = masking_worker.build_engine(PiiConfig())\n"
        "print(loaded, engine.mask('mail ann@example.com'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True mail <EMAIL_ADDRESS>"
    assert "Presidio needs spaCy here" in out.stderr
