"""One text through chatobs's recognizers: what Presidio's ``AnalyzerEngine.analyze`` does, without the steps that
cannot change a finding for chatobs's recognizer set.

``AnalyzerEngine.analyze`` is generic: it looks the recognizers up in the registry on every call, asks each of them
for a recognizer-level context enhancement (none of chatobs's recognizers has one: ``EntityRecognizer``'s default
returns the results as they are), then deep-copies every finding (explanations, metadata) before its context
enhancer raises the scores, although the findings are fresh objects nobody else holds. This module runs the same
recognizers with one NLP-artifacts object, enhances the findings in place with Presidio's own enhancer methods, and
then filters exactly as Presidio does (threshold, ``remove_duplicates``, exact allow list, no decision process).
``PiiEngine.analyze_with_presidio`` is the reference: ``tests/privacy/test_entity_gates.py`` checks both give the
same findings on the evaluation set, so a Presidio upgrade that changes the steps shows there.

Presidio stays the engine (recognizers, patterns, validators, libphonenumber, the enhancer's word window): this is
only the loop around it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

__all__ = ["run_recognizers"]

_ID = "recognizer_identifier"  # RecognizerResult.RECOGNIZER_IDENTIFIER_KEY
_NAME = "recognizer_name"  # RecognizerResult.RECOGNIZER_NAME_KEY
_ENHANCED = "is_score_enhanced_by_context"  # RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY


def run_recognizers(
    analyzer: Any,
    recognizers: list[Any],
    text: str,
    entities: list[str],
    threshold: float,
    allow: Collection[str],
    context: list[str] | None,
) -> list[Any]:
    """The findings of ``recognizers`` in ``text`` (Presidio ``RecognizerResult`` objects), as
    ``analyzer.analyze(text, "en", entities, score_threshold=threshold, allow_list=allow, context=context)``."""
    from presidio_analyzer import EntityRecognizer

    artifacts = analyzer.nlp_engine.process_text(text, "en")  # lazy for pattern mode: words split only if read
    results: list[Any] = []
    for recognizer in recognizers:
        if not recognizer.is_loaded:
            recognizer.load()
            recognizer.is_loaded = True
        found = recognizer.analyze(text=text, entities=entities, nlp_artifacts=artifacts)
        if not found:
            continue
        for result in found:
            meta = result.recognition_metadata
            if not meta:
                meta = result.recognition_metadata = {}
            meta.setdefault(_ID, recognizer.id)
            meta.setdefault(_NAME, recognizer.name)
        results.extend(found)
    if not results:
        return results
    by_id: dict[Any, Any] = {r.id: r for r in recognizers}
    if any(type(r).enhance_using_context is not EntityRecognizer.enhance_using_context for r in recognizers):
        results = _recognizer_enhancements(text, results, recognizers, artifacts, context)
    _enhance_in_place(analyzer.context_aware_enhancer, text, results, by_id, artifacts, context)
    results = [r for r in results if r.score >= threshold]
    results = EntityRecognizer.remove_duplicates(results)
    if allow:
        results = [r for r in results if text[r.start : r.end] not in allow]
    for result in results:
        result.analysis_explanation = None
    return results


def _recognizer_enhancements(
    text: str, results: list[Any], recognizers: list[Any], artifacts: Any, context: list[str] | None
) -> list[Any]:
    """Presidio's recognizer-level step, for a recognizer that has one (a custom recognizer class)."""
    out: list[Any] = []
    for recognizer in recognizers:
        own = [r for r in results if r.recognition_metadata[_ID] == recognizer.id]
        other = [r for r in results if r.recognition_metadata[_ID] != recognizer.id]
        out.extend(
            recognizer.enhance_using_context(
                text=text,
                raw_recognizer_results=own,
                other_raw_recognizer_results=other,
                nlp_artifacts=artifacts,
                context=context,
            )
        )
    return out


def _enhance_in_place(
    enhancer: Any, text: str, results: list[Any], by_id: dict[Any, Any], artifacts: Any, context: list[str] | None
) -> None:
    """``LemmaContextAwareEnhancer.enhance_using_context`` without its ``deepcopy`` of the findings and without
    filling the explanation (``analyze`` drops it)."""
    extra = [w.lower() for w in context] if context else []
    for result in results:
        recognizer = by_id.get((result.recognition_metadata or {}).get(_ID))
        if recognizer is None or not recognizer.context or result.recognition_metadata.get(_ENHANCED):
            continue
        words = enhancer._extract_surrounding_words(
            nlp_artifacts=artifacts, word=text[result.start : result.end], start=result.start
        )
        words.extend(extra)
        if enhancer._find_supportive_word_in_context(words, recognizer.context, enhancer.context_matching_mode):
            result.score = min(
                max(result.score + enhancer.context_similarity_factor, enhancer.min_score_with_context_similarity),
                enhancer.MAX_SCORE,
            )
