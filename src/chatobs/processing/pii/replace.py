"""Replacing the entities Presidio's analyzer found, without presidio-anonymizer.

chatobs used presidio-anonymizer only for this last step, and that package pins a ``cryptography`` range that
conflicts with apps such as Open WebUI (it needs it for an encryption operator chatobs never uses). This is the same
algorithm as its ``AnonymizerEngine.anonymize`` with the default settings (conflict resolution
MERGE_SIMILAR_OR_CONTAINED, entities separated only by spaces merged), ported from presidio-anonymizer 2.2.366 so the
masked text is identical; ``tests/privacy/test_presidio_light.py`` compares the two on the evaluation set.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["replace_entities"]

_SPACES = re.compile(r"^( )+$")


@dataclass
class _Found:
    start: int
    end: int
    entity_type: str
    score: float


def replace_entities(text: str, results: Iterable[Any], replacement: Callable[[str, str], str]) -> str:
    """``text`` with each found entity (objects with start, end, entity_type, score) replaced by
    ``replacement(entity_type, original_value)``."""
    found = sorted((_Found(r.start, r.end, r.entity_type, r.score) for r in results), key=lambda f: (f.start, f.end))
    found = _merge_spaced(text, _drop_contained(_merge_same_type(found)))
    out = text
    last = len(text)
    # Right to left, each replacement cut at the start of the one already made (overlapping different types).
    for f in sorted(found, key=lambda f: f.start, reverse=True):
        new = replacement(f.entity_type, text[f.start : f.end])
        out = out[: f.start] + new + out[min(f.end, last) :]
        last = f.start
    return out


def _merge_same_type(found: list[_Found]) -> list[_Found]:
    """Overlapping results of one type become one (union of spans, highest score), at the place of the last."""
    by_type: dict[str, list[tuple[int, _Found]]] = {}
    for position, f in enumerate(found):
        by_type.setdefault(f.entity_type, []).append((position, f))
    kept: list[tuple[int, _Found]] = []
    for items in by_type.values():
        items.sort(key=lambda item: (item[1].start, item[1].end))
        position, current = items[0]
        for next_position, f in items[1:]:
            if min(current.end, f.end) - max(current.start, f.start) <= 0:  # touching or apart
                kept.append((position, current))
                position, current = next_position, f
                continue
            current.start = min(current.start, f.start)
            current.end = max(current.end, f.end)
            current.score = max(current.score, f.score)
            position = max(position, next_position)
        kept.append((position, current))
    kept.sort(key=lambda item: item[0])
    return [f for _, f in kept]


def _drop_contained(found: list[_Found]) -> list[_Found]:
    """A result inside another is dropped; of equal spans the highest score stays (the last on a tie)."""
    order = sorted(range(len(found)), key=lambda i: (found[i].start, -found[i].end))
    dropped: set[int] = set()
    largest_end: int | None = None
    g = 0
    while g < len(order):
        first = found[order[g]]
        h = g
        while h < len(order) and found[order[h]].start == first.start and found[order[h]].end == first.end:
            h += 1
        group = order[g:h]
        if largest_end is not None and largest_end >= first.end:
            dropped.update(group)
        else:
            survivor = max(group, key=lambda i: (found[i].score, i))
            dropped.update(i for i in group if i != survivor)
        if largest_end is None or first.end > largest_end:
            largest_end = first.end
        g = h
    return [f for i, f in enumerate(found) if i not in dropped]


def _merge_spaced(text: str, found: list[_Found]) -> list[_Found]:
    """Neighbours of one type separated only by spaces become one ("555 123" as one phone number)."""
    merged: list[_Found] = []
    prev: _Found | None = None
    for f in found:
        if prev is not None and prev.entity_type == f.entity_type and _SPACES.search(text[prev.end : f.start]):
            merged.pop()  # prev is the last one kept
            f.start = prev.start
        merged.append(f)
        prev = f
    return merged
