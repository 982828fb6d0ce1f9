"""Masking of attribute values: secrets, then Presidio PII, then truncation; JSON field by field; a bounded cache.

Used by the redaction stage in two passes per batch so that all texts of a batch go to Presidio in one call (one
round trip when Presidio runs in the worker process): ``collect`` every value, ``resolve`` the texts not in the cache,
then ``apply`` to build the masked values.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from . import secrets
from .pii import PiiConfig, precheck_pattern

__all__ = ["MaskingFailed", "PiiBackend", "ThreadBackend", "Masker", "MaskCache", "truncate", "failed_marker"]


class MaskingFailed(Exception):
    """Content could not be masked; ``reason`` is one of error, timeout, queue_full, worker_unavailable."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def failed_marker(reason: str) -> str:
    return f"<chatobs: content removed, masking {reason}>"


class PiiBackend(Protocol):
    def mask_many(self, items: list[tuple[str, str | None]], timeout_s: float) -> list[str | bool | None]:
        """Masked text per item, ``None`` where not done in time, ``False`` where masking that item failed; raises
        ``MaskingFailed`` when nothing can be done."""
        ...

    def close(self) -> None: ...


class ThreadBackend:
    """Presidio in this process, on the pipeline thread (the engine is built lazily on first use)."""

    def __init__(self, cfg: PiiConfig) -> None:
        self.cfg = cfg

    def mask_many(self, items: list[tuple[str, str | None]], timeout_s: float) -> list[str | bool | None]:
        from .pii import get_engine

        engine = get_engine(self.cfg)
        return engine.mask_many(items, deadline=time.monotonic() + timeout_s)

    def close(self) -> None:
        pass


class MaskCache:
    """LRU of masked texts keyed by a hash of (settings, context, text); bounded in entries and in characters."""

    def __init__(self, fingerprint: str, max_entries: int = 8192, max_chars: int = 8_000_000) -> None:
        self._fp = fingerprint.encode()
        self._data: OrderedDict[bytes, str] = OrderedDict()
        self._max_entries = max_entries
        self._max_chars = max_chars
        self._chars = 0
        self.hits = 0
        self.misses = 0

    def key(self, text: str, ctx: str | None) -> bytes:
        h = hashlib.blake2b(self._fp, digest_size=16)
        h.update((ctx or "").encode())
        h.update(b"\x00")
        h.update(text.encode("utf-8", "surrogatepass"))
        return h.digest()

    def get(self, key: bytes) -> str | None:
        value = self._data.get(key)
        if value is None:
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: bytes, value: str) -> None:
        if len(value) > self._max_chars // 16:
            return  # one huge text must not flush everything else
        old = self._data.pop(key, None)
        if old is not None:
            self._chars -= len(old)
        self._data[key] = value
        self._chars += len(value)
        while len(self._data) > self._max_entries or self._chars > self._max_chars:
            _, dropped = self._data.popitem(last=False)
            self._chars -= len(dropped)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


# A mask token: <EMAIL_ADDRESS>, <PHONE_NUMBER:3fa2...>, <SECRET>, <chatobs: ...>. Truncation never cuts inside one.
_TOKEN_START = re.compile(r"<(?:[A-Z][A-Z0-9_]*(?::[0-9a-f]*)?|chatobs:[^>]*)$")


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters plus a marker saying how much was cut, never inside a mask token."""
    if len(text) <= limit:
        return text
    cut = max(limit, 0)
    start = text.rfind("<", max(0, cut - 120), cut)
    if start != -1 and _TOKEN_START.match(text, start, cut):
        cut = start
    if cut > 0 and "\ud800" <= text[cut - 1] <= "\udbff":
        cut -= 1  # never split a surrogate pair
    return f"{text[:cut]}…[truncated {len(text) - cut} chars]"


_NUMBER_MIN = 10**5  # numbers below this cannot be PII of any enabled type (phones, cards, SSNs have more digits)


class Masker:
    """Masks one batch's attribute values. Not thread-safe: used by the pipeline thread only."""

    def __init__(self, cfg: PiiConfig | None, backend: PiiBackend | None, *, max_length: int, timeout_s: float,
                 cache_entries: int = 8192) -> None:
        self.cfg = cfg
        self.backend = backend if cfg is not None else None
        self.max_length = max_length
        self.timeout_s = timeout_s
        self.cache = MaskCache(cfg.fingerprint() if cfg else "off", max_entries=cache_entries)
        self._gate = precheck_pattern(cfg) if cfg is not None else None
        self._batch: dict[bytes, str | bool | None] = {}  # this batch's results: independent of cache eviction
        self._pending: dict[bytes, tuple[str, str | None]] = {}
        self.skipped_precheck = 0
        self.sent = 0
        # Whole values already masked (a chat app resends its tool definitions, system prompt and earlier replies
        # with every call): a hit skips JSON parsing, the walk and the secret regexes. Bounded by characters held.
        self._memo: OrderedDict[tuple[bool, str], tuple[str, bool, bool]] = OrderedDict()
        self._memo_chars = 0
        self.memo_max_chars = 2_000_000
        self.memo_hits = 0
        # Elements of a JSON array already masked: every call resends the chat history, so only the new messages of
        # a turn need the walk. Keyed by the element's compact JSON (C-fast to make) and the kind of masking.
        self._elements: OrderedDict[tuple[bool, str], tuple[Any, bool, bool]] = OrderedDict()
        self._elements_chars = 0

    # --- pass 1 ---------------------------------------------------------------------------------------------------
    def start_batch(self) -> None:
        self._batch = {}
        self._pending = {}

    def collect(self, value: Any) -> None:
        if isinstance(value, str) and (True, value) in self._memo:
            return
        if isinstance(value, str):
            parsed = _parse_json(value)
            if isinstance(parsed, list):
                for element in parsed:
                    if (True, _element_key(element)) not in self._elements:
                        _walk(element, None, self._collect_leaf)
                return
        _walk_value(value, self._collect_leaf)

    def _collect_leaf(self, text: str, ctx: str | None) -> str:
        if self.backend is None or not text:
            return text
        text = secrets.scrub(text)
        if self._gate is not None and self._gate.search(text) is None:
            return text
        key = self.cache.key(text, ctx)
        if key in self._batch or key in self._pending:
            return text
        cached = self.cache.get(key)
        if cached is not None:
            self._batch[key] = cached
        else:
            self._pending[key] = (text, ctx)
        return text

    def resolve(self) -> None:
        """Send the texts not in the cache to Presidio. Raises ``MaskingFailed`` (then every pending text fails)."""
        if not self._pending or self.backend is None:
            return
        keys = list(self._pending)
        items = [self._pending[k] for k in keys]
        self._pending = {}
        for k in keys:
            self._batch[k] = None
        self.sent += len(items)
        results = self.backend.mask_many(items, self.timeout_s)
        for k, masked in zip(keys, results):
            self._batch[k] = masked
            if isinstance(masked, str):
                self.cache.put(k, masked)

    # --- pass 2 ---------------------------------------------------------------------------------------------------
    def mask(self, value: Any, *, content: bool = True) -> tuple[Any, bool, bool]:
        """(masked value, changed by masking, truncated). ``content=False``: secrets and truncation only.
        Raises ``MaskingFailed`` when a text of ``value`` was not masked."""
        leaf = self._mask_leaf if content else _secrets_leaf
        if isinstance(value, str):
            memo_key = (content, value)
            hit = self._memo.get(memo_key)
            if hit is not None:
                self._memo.move_to_end(memo_key)
                self.memo_hits += 1
                return hit
            result = self._mask_str(value, leaf)  # raises MaskingFailed: nothing is remembered then
            self._remember(memo_key, result)
            return result
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            parts = [self._mask_str(v, leaf) for v in value]
            return tuple(p[0] for p in parts), any(p[1] for p in parts), any(p[2] for p in parts)
        return value, False, False

    def _remember(self, key: tuple[bool, str], result: tuple[str, bool, bool]) -> None:
        size = len(key[1]) + len(result[0])
        if size > self.memo_max_chars // 8:
            return
        self._memo[key] = result
        self._memo_chars += size
        while self._memo_chars > self.memo_max_chars:
            (_, old_text), old_result = self._memo.popitem(last=False)
            self._memo_chars -= len(old_text) + len(old_result[0])

    def _walk_elements(self, items: list[Any], leaf: Callable[[str, str | None], str]) -> tuple[list[Any], bool]:
        content = leaf == self._mask_leaf
        out: list[Any] = []
        changed = False
        for element in items:
            key = (content, _element_key(element))
            hit = self._elements.get(key)
            if hit is None:
                box = [False]

                def tracking(t: str, ctx: str | None) -> str:
                    m = leaf(t, ctx)
                    if m != t:
                        box[0] = True
                    return m

                walked, blanked = _walk(element, None, tracking)  # raises MaskingFailed: nothing remembered
                hit = (walked, box[0] or blanked, False)
                size = len(key[1])
                if size <= self.memo_max_chars // 8:
                    self._elements[key] = hit
                    self._elements_chars += size
                    while self._elements_chars > self.memo_max_chars:
                        (_, old_key), _ = self._elements.popitem(last=False)
                        self._elements_chars -= len(old_key)
            else:
                self._elements.move_to_end(key)
            out.append(hit[0])
            changed = changed or hit[1]
        return out, changed

    def _mask_str(self, text: str, leaf: Callable[[str, str | None], str]) -> tuple[str, bool, bool]:
        parsed = _parse_json(text)
        if parsed is _NOT_JSON:
            masked = leaf(text, None)
            changed = masked != text
            out = truncate(masked, self.max_length) if self.max_length > 0 else masked
            return out, changed, len(out) != len(masked)
        changed_box = [False]

        def tracking(t: str, ctx: str | None) -> str:
            m = leaf(t, ctx)
            if m != t:
                changed_box[0] = True
            return m

        if isinstance(parsed, list):
            walked, changed = self._walk_elements(parsed, leaf)
        else:
            walked, secret_fields = _walk(parsed, None, tracking)
            changed = changed_box[0] or secret_fields
        dumped = json.dumps(walked, ensure_ascii=False) if changed else text
        if self.max_length <= 0 or len(dumped) <= self.max_length:
            return dumped, changed, False
        return _fit_json(walked, self.max_length), changed, True

    def _mask_leaf(self, text: str, ctx: str | None) -> str:
        if not text:
            return text
        text = secrets.scrub(text)
        if self.backend is None or (self._gate is not None and self._gate.search(text) is None):
            self.skipped_precheck += 1 if self.backend is not None else 0
            return text
        key = self.cache.key(text, ctx)
        masked = self._batch[key] if key in self._batch else self.cache.get(key)
        if isinstance(masked, str):
            return masked
        # None: not reached in time; False: masking this text raised; missing: never collected (a bug) -> error.
        raise MaskingFailed("timeout" if key in self._batch and masked is None else "error", "text was not masked")

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


def _element_key(element: Any) -> str:
    return json.dumps(element, ensure_ascii=False, separators=(",", ":"))


def _secrets_leaf(text: str, ctx: str | None) -> str:
    return secrets.scrub(text)


_NOT_JSON: Any = object()


def _parse_json(text: str) -> Any:
    s = text.lstrip()[:1]
    if s not in ("{", "["):
        return _NOT_JSON
    try:
        return json.loads(text)
    except ValueError:
        return _NOT_JSON


def _walk_value(value: Any, leaf: Callable[[str, str | None], str]) -> None:
    values = value if isinstance(value, (list, tuple)) else (value,)
    for v in values:
        if isinstance(v, str):
            parsed = _parse_json(v)
            if parsed is _NOT_JSON:
                leaf(v, None)
            else:
                _walk(parsed, None, leaf)


def _context_words(key: str | None) -> str | None:
    # "phone_number" / "billingAddress" -> "phone number" / "billing address": Presidio's context words are tokens.
    if not key:
        return None
    return re.sub(r"(?<=[a-z])(?=[A-Z])|[_\-.]+", " ", key).lower().strip() or None


def _walk(obj: Any, key: str | None, leaf: Callable[[str, str | None], str]) -> tuple[Any, bool]:
    """Mask every string (and long number) in a JSON structure; a field whose name names a secret loses its value.
    Returns (new structure, whether a secret field was blanked)."""
    if isinstance(obj, str):
        return leaf(obj, _context_words(key)), False
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        blanked = False
        for k, v in obj.items():
            if secrets.is_secret_name(str(k)) and v not in (None, "", [], {}) and not isinstance(v, bool):
                out[k] = secrets.SECRET_TOKEN
                blanked = True
            else:
                out[k], b = _walk(v, str(k), leaf)
                blanked = blanked or b
        return out, blanked
    if isinstance(obj, list):
        items = [_walk(v, key, leaf) for v in obj]
        return [i[0] for i in items], any(i[1] for i in items)
    if isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) >= _NUMBER_MIN:
        # {"phone": 5551234567}, {"card": 4111111111111111}: numbers can be PII too.
        s = str(obj)
        masked = leaf(s, _context_words(key))
        return (obj if masked == s else masked), False
    return obj, False


def _fit_json(obj: Any, limit: int) -> str:
    """Serialise ``obj`` within ``limit`` characters and still as valid JSON, by cutting its longest strings (each
    with a truncation marker). Falls back to cutting the text when the structure alone is too big."""
    longest = _longest_string(obj)
    lo, hi, best = 0, longest, None
    while lo <= hi:
        mid = (lo + hi) // 2
        s = json.dumps(_cap_strings(obj, mid), ensure_ascii=False)
        if len(s) <= limit:
            best, lo = s, mid + 1
        else:
            hi = mid - 1
    if best is not None:
        return best
    return truncate(json.dumps(obj, ensure_ascii=False), limit)


def _longest_string(obj: Any) -> int:
    if isinstance(obj, str):
        return len(obj)
    if isinstance(obj, dict):
        return max((_longest_string(v) for v in obj.values()), default=0)
    if isinstance(obj, list):
        return max((_longest_string(v) for v in obj), default=0)
    return 0


def _cap_strings(obj: Any, n: int) -> Any:
    if isinstance(obj, str):
        return truncate(obj, n) if len(obj) > n else obj
    if isinstance(obj, dict):
        return {k: _cap_strings(v, n) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cap_strings(v, n) for v in obj]
    return obj
