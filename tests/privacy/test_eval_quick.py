"""Quick variant of the evaluation in benchmarks/bench_privacy.py: a slice of the labelled set, same targets
(no pattern-type value survives masking; no false positive on code or prose)."""

from __future__ import annotations

import pytest

from benchmarks.bench_privacy import PATTERN_TYPES, evaluate
from benchmarks.privacy_dataset import load
from chatobs.processing.pii.engine import PiiConfig, get_engine

pytestmark = pytest.mark.timeout(120)


def _sample() -> list[dict]:
    records = load()
    pii_records = [r for r in records if r["kind"] not in ("code", "prose")][:150]
    clean = [r for r in records if r["kind"] in ("code", "prose")]
    return pii_records + clean


def test_quick_eval_meets_the_targets() -> None:
    res = evaluate(get_engine(PiiConfig()), _sample())
    per = res["per_entity"]
    for t in PATTERN_TYPES:
        if t in per and per[t]["n"]:
            assert per[t]["leak"] == 0.0, (t, per[t])
    assert res["false_positive_messages"] == []
    assert res["clean_messages"] >= 40


def test_precheck_costs_no_recall() -> None:
    sample = _sample()
    with_gate = evaluate(get_engine(PiiConfig()), sample)
    without = evaluate(get_engine(PiiConfig(precheck=False)), sample)
    assert {t: m["leak"] for t, m in with_gate["per_entity"].items()} == {
        t: m["leak"] for t, m in without["per_entity"].items()
    }
