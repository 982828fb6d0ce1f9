"""Every cache of the pipeline stays within its stated bound however many distinct values it meets (the soak in
benchmarks/bench_soak.py shows the memory this keeps flat; these check the bounds themselves, which noise cannot move).
"""

from __future__ import annotations

import json

from chatobs.core import semconv
from chatobs.processing import cost, secrets
from chatobs.processing.alerts.rules import _Keyed
from chatobs.processing.masking.masker import MaskCache, Masker, _context_words
from chatobs.processing.metrics.recorder import _LIMITS, OTHER, _Cardinality


def _history(i: int, filler: str = "") -> str:
    return json.dumps(
        [
            {"role": "system", "content": "be brief" + filler},
            {"role": "user", "content": f"hello {i}, my key is AKIAIOSFODNN7EXAMPLE"},
        ]
    )


def test_masker_memos_are_bounded_in_entries() -> None:
    masker = Masker(None, None, max_length=100_000, timeout_s=1)  # secrets only: no Presidio needed for the bounds
    masker.memo_max_entries = 50
    for i in range(500):
        masker.start_batch()
        value = _history(i)
        masker.collect(value)
        assert "<SECRET>" in masker.mask(value, content=False)[0]
        masker.mask(f"a short text {i}", content=False)
        masker.end_batch()
        assert len(masker._memo) <= 50 and len(masker._elements) <= 50
    assert len(masker._memo) == 50  # it did fill: the bound is what stopped it


def test_masker_memos_are_bounded_in_characters() -> None:
    masker = Masker(None, None, max_length=1_000_000, timeout_s=1)
    masker.memo_max_chars = 40_000
    filler = "x" * 1_000  # long histories: the character bound, not the entry bound, must hold them
    for i in range(300):
        masker.start_batch()
        value = _history(i, filler)
        masker.collect(value)
        masker.mask(value, content=False)
        masker.end_batch()
        assert masker._memo_chars <= 40_000 and masker._elements_chars <= 40_000
        assert len(masker._arrays) <= masker.arrays_max and masker._arrays_chars <= 40_000 // 4
    assert sum(len(t) + len(r[0]) for (_, t), r in masker._memo.items()) == masker._memo_chars


def test_mask_cache_bounds() -> None:
    cache = MaskCache("fp", max_entries=100, max_chars=10_000)
    for i in range(1_000):
        cache.put(cache.key(f"text {i}", None), f"masked {i} " + "y" * (i % 50))
        assert len(cache) <= 100 and cache._chars <= 10_000
    cache.put(cache.key("huge", None), "z" * 5_000)  # over a sixteenth of the bound: not kept at all
    assert cache.get(cache.key("huge", None)) is None


def test_alert_subjects_expire_and_are_capped() -> None:
    keyed = _Keyed(window_s=60.0, max_keys=100, maxlen=10)
    for i in range(1_000):  # one new subject per second: only the last minute's subjects are kept
        keyed.get(f"user-{i}", float(i)).add(float(i), 1.0)
        assert len(keyed.windows) <= 61
    assert all(len(w.items) <= 10 for w in keyed.windows.values())
    busy = _Keyed(window_s=1e9, max_keys=100, maxlen=10)  # nothing expires: the count bound holds
    for i in range(1_000):
        busy.get(f"user-{i}", float(i)).add(float(i), 1.0)
    assert len(busy.windows) == 100


def test_metric_label_values_are_capped() -> None:
    card = _Cardinality()
    limit = _LIMITS[semconv.USER_ID]
    labels = [card(semconv.USER_ID, f"user-{i}" + "u" * 500) for i in range(limit + 500)]
    assert len(card._seen[semconv.USER_ID]) == limit
    assert labels[-1] == OTHER and all(len(v) <= 128 for v in labels)


def test_function_caches_are_bounded() -> None:
    for i in range(5_000):
        secrets.scrub(f"token {i}")
        secrets.is_secret_name(f"attr.name_{i}")
        _context_words(f"field_{i}")
    assert secrets._scrub_cached.cache_info().currsize <= 4096
    assert secrets._is_secret_name_cached.cache_info().currsize <= 4096
    from chatobs.processing.masking.masker import _context_words_cached

    assert _context_words_cached.cache_info().currsize <= 2048
    secrets.scrub("long " + "w" * 5_000)  # over _SCRUB_CACHE_TEXT_MAX: not remembered
    assert secrets._scrub_cached.cache_info().currsize <= 4096


def test_cost_resolution_cache_keeps_long_model_names_out() -> None:
    stage = cost.CostStage(None, use_genai_prices=False)
    for i in range(50):
        stage._price_cached((f"model-{i}-" + "m" * 600,), "openai", (10, 10, 0, 0))
    assert len(stage._resolved) == 0
    for i in range(cost._CACHE_SIZE + 10):
        stage._price_cached((f"model-{i}",), "openai", (10, 10, 0, 0))
        assert len(stage._resolved) <= cost._CACHE_SIZE


def test_pattern_mode_word_splitter_keeps_nothing_per_text() -> None:
    # The default masking engine splits words itself (words.py); unlike spaCy's vocabulary, which kept every word
    # it had seen (~450 bytes each, ~400 KB for these texts), it must retain nothing per distinct text.
    import gc
    import tracemalloc

    from chatobs.processing.pii.engine import PiiConfig, _nlp_engine

    engine = _nlp_engine(PiiConfig())

    def run(start: int, n: int) -> None:
        for i in range(start, start + n):
            artifacts = engine.process_text(
                f"mail jane.doe{i}@example.com or call +1 415 555 {i:04d}, ticket {i}", "en"
            )
            assert f"jane.doe{i}@example.com" in list(artifacts.tokens)

    run(0, 50)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        run(50, 300)
        gc.collect()
        grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    assert grown < 50_000, f"the word splitter retained {grown} bytes over 300 distinct texts"
