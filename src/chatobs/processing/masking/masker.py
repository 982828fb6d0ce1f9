"""Masking of attribute values: secrets, then Presidio PII, then truncation; JSON field by field; a bounded cache.

Used by the redaction stage in two passes per batch so that all texts of a batch go to Presidio in one call (one
round trip when Presidio runs in the worker process): ``collect`` every value, ``resolve`` the texts not in the cache,
then ``apply`` to build the masked values.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable
from itertools import islice
from json.encoder import encode_basestring as _json_string  # the C encoder of json.dumps(ensure_ascii=False)
from typing import Any, Protocol, cast

from .. import secrets
from ..pii.engine import PiiConfig, precheck_pattern

__all__ = ["MaskCache", "Masker", "MaskingFailed", "PiiBackend", "ThreadBackend", "failed_marker", "truncate"]


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
        from ..pii.engine import get_engine

        engine = get_engine(self.cfg)
        return engine.mask_many(items, deadline=time.monotonic() + timeout_s)

    def close(self) -> None:
        pass


class MaskCache:
    """LRU of masked texts keyed by a hash of (settings, context, text); bounded: ``max_entries`` entries and
    ``max_chars`` characters of masked text (a text over a sixteenth of that is not kept)."""

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
    cut = _cut_point(text, limit)
    return f"{text[:cut]}…[truncated {len(text) - cut} chars]"


_MARKER_CHARS = len("…[truncated  chars]")  # the marker of ``truncate`` without its number


def _cut_point(text: str, limit: int) -> int:
    """Where ``truncate`` cuts a text longer than ``limit``."""
    cut = max(limit, 0)
    start = text.rfind("<", max(0, cut - 120), cut)
    if start != -1 and _TOKEN_START.match(text, start, cut):
        cut = start
    if cut > 0 and "\ud800" <= text[cut - 1] <= "\udbff":
        cut -= 1  # never split a surrogate pair
    return cut


_NUMBER_MIN = 10**5  # numbers below this cannot be PII of any enabled type (phones, cards, SSNs have more digits)


class Masker:
    """Masks one batch's attribute values. Not thread-safe: used by the pipeline thread only."""

    def __init__(
        self,
        cfg: PiiConfig | None,
        backend: PiiBackend | None,
        *,
        max_length: int,
        timeout_s: float,
        cache_entries: int = 8192,
    ) -> None:
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
        # with every call): a hit skips JSON parsing, the walk and the secret regexes. Bounded: ``memo_max_entries``
        # entries and ``memo_max_chars`` characters (text and result); the element memo below has the same bounds.
        self._memo: OrderedDict[tuple[bool, str], tuple[str, bool, bool]] = OrderedDict()
        self._memo_chars = 0
        self.memo_max_chars = 1_000_000
        self.memo_max_entries = 4096  # many short texts: each entry's own overhead (~300 bytes) counts too
        self.memo_hits = 0
        # Elements of a JSON array already masked: every call resends the chat history, so only the new messages of
        # a turn need the walk. Keyed by the element's own JSON text (a slice of the value, nothing re-encoded) and
        # the kind of masking; holds the element's encoded masked form, so a resent history is spliced, not dumped.
        self._elements: OrderedDict[tuple[bool, str], _Element] = OrderedDict()
        self._elements_chars = 0
        # This batch's parsed values: ``collect`` and ``mask`` see the same strings, so each is parsed once.
        self._parsed: dict[str, tuple[list[tuple[str, Any]] | None, Any]] = {}
        # Recent JSON arrays, each as its text up to the closing bracket and its elements: the next call of a
        # conversation sends the same history plus new messages, so only the new messages need parsing. One entry per
        # conversation (an array that extends an entry replaces it), bounded: ``arrays_max`` entries and a quarter of
        # ``memo_max_chars`` characters.
        self._arrays: OrderedDict[str, list[tuple[str, Any]]] = OrderedDict()
        self._arrays_chars = 0
        self.arrays_max = 64
        # New array elements walked by ``collect`` whose texts await Presidio: ``mask`` fills the results in instead
        # of walking them again. This batch only.
        self._drafts: dict[str, tuple[Any, bool]] = {}

    # --- pass 1 ---------------------------------------------------------------------------------------------------
    def start_batch(self) -> None:
        self.end_batch()

    def end_batch(self) -> None:
        """Drop the batch's working data (Presidio results, parsed values, drafts): nothing of a batch outlives it
        but the bounded caches."""
        self._batch = {}
        self._pending = {}
        self._parsed = {}
        self._drafts = {}

    def collect(self, value: Any) -> None:
        if isinstance(value, str):
            if (True, value) in self._memo:
                return
            elements, parsed = self._parse(value)
            if elements is not None:
                for raw, element in elements:
                    if (True, raw) not in self._elements and raw not in self._drafts:
                        self._draft(raw, element)
            elif parsed is _NOT_JSON:
                self._collect_leaf(value, None)
            elif (True, value) not in self._elements and value not in self._drafts:
                self._draft(value, parsed)  # a JSON object: one element, keyed by its whole text
            return
        _walk_value(value, self._collect_leaf)

    def _parse(self, text: str) -> tuple[list[tuple[str, Any]] | None, Any]:
        """(elements as (JSON text, value) pairs when ``text`` is a JSON array, else None; else the parsed value or
        ``_NOT_JSON``)."""
        hit = self._parsed.get(text)
        if hit is None:
            elements = self._split(text)
            if elements is not None:
                hit = (elements, None)
            else:
                parsed = _parse_json(text)
                if isinstance(parsed, list):  # an array the splitter declined: key its elements by their dump
                    hit = ([(_element_key(e), e) for e in parsed], None)
                else:
                    hit = (None, parsed)
            self._parsed[text] = hit
        return hit

    def _split(self, text: str) -> list[tuple[str, Any]] | None:
        """``_split_array(text)``, parsing only what follows a recent array that ``text`` extends."""
        if len(text) < _PREFIX_MIN or not text.startswith("["):
            return _split_array(text)  # short arrays (replies, tool results) parse faster than they are looked up
        elements = None
        for body in islice(reversed(self._arrays), 16):  # most recent first: the conversation that just called
            if len(body) < len(text) and text.startswith(body):
                elements = _split_array(text, (len(body), self._arrays[body]))
                if elements is not None:
                    self._arrays_chars -= len(body)
                    del self._arrays[body]  # ``text`` extends it: one entry per conversation
                break
        if elements is None:
            elements = _split_array(text)
        if elements and len(elements) > 1:  # a history has a system or user message and more; a lone reply never grows
            body = text.rstrip(" \t\n\r")[:-1]
            if len(body) <= self.memo_max_chars // 8 and body not in self._arrays:
                self._arrays[body] = elements
                self._arrays_chars += len(body)
                while len(self._arrays) > self.arrays_max or self._arrays_chars > self.memo_max_chars // 4:
                    old, _ = self._arrays.popitem(last=False)
                    self._arrays_chars -= len(old)
        return elements

    def _draft(self, raw: str, element: Any) -> None:
        """Walk a new array element once: remembered as masked right away when every text's result is known (no PII
        candidate, or in the cache), else kept as a draft whose pending texts ``mask`` fills in after ``resolve``."""
        state = [False, False]  # changed, pending

        def leaf(t: str, ctx: str | None) -> Any:
            m = self._leaf_now(t, ctx)
            if type(m) is _Pending:
                state[1] = True
            elif m != t:
                state[0] = True
            return m

        walked, blanked = _walk(element, None, leaf)
        if state[1]:
            self._drafts[raw] = (walked, state[0] or blanked)
        else:
            self._store_element((True, raw), walked, state[0] or blanked)

    def _leaf_now(self, text: str, ctx: str | None) -> Any:
        """``_mask_leaf`` before ``resolve``: the masked text when known now, else a ``_Pending`` (and the text is
        queued for Presidio)."""
        if not text:
            return text
        original = text
        text = secrets.scrub(text)
        if self.backend is None or (self._gate is not None and self._gate.search(text) is None):
            self.skipped_precheck += 1 if self.backend is not None else 0
            return text
        key = self.cache.key(text, ctx)
        known = self._batch.get(key)
        if isinstance(known, str):
            return known
        if key not in self._pending:
            cached = self.cache.get(key)
            if cached is not None:
                self._batch[key] = cached
                return cached
            self._pending[key] = (text, ctx)
        return _Pending(key, original)

    def _fill(self, obj: Any, box: list[bool]) -> Any:
        """A draft with its pending texts replaced by Presidio's results (``box[0]``: one of them changed)."""
        if type(obj) is _Pending:
            masked = self._batch.get(obj.key)
            if not isinstance(masked, str):
                raise MaskingFailed(
                    "timeout" if obj.key in self._batch and masked is None else "error", "text was not masked"
                )
            if masked != obj.text:
                box[0] = True
                return masked
            return obj.number if obj.number is not None else masked
        if isinstance(obj, dict):
            return {k: self._fill(v, box) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._fill(v, box) for v in obj]
        return obj

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
        for k, masked in zip(keys, results, strict=False):
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
            result = self._mask_str(value, leaf, content)  # raises MaskingFailed: nothing is remembered then
            self._remember(memo_key, result)
            return result
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            parts = [self._mask_str(v, leaf, content) for v in value]
            return tuple(p[0] for p in parts), any(p[1] for p in parts), any(p[2] for p in parts)
        return value, False, False

    def _remember(self, key: tuple[bool, str], result: tuple[str, bool, bool]) -> None:
        size = len(key[1]) + len(result[0])
        if size > self.memo_max_chars // 8:
            return
        self._memo[key] = result
        self._memo_chars += size
        while self._memo_chars > self.memo_max_chars or len(self._memo) > self.memo_max_entries:
            (_, old_text), old_result = self._memo.popitem(last=False)
            self._memo_chars -= len(old_text) + len(old_result[0])

    def _element(self, content: bool, raw: str, element: Any, leaf: Callable[[str, str | None], str]) -> _Element:
        key = (content, raw)
        hit = self._elements.get(key)
        if hit is not None:
            self._elements.move_to_end(key)
            return hit
        draft = self._drafts.pop(raw, None) if content else None
        if draft is not None:
            box = [False]
            walked = self._fill(draft[0], box)  # raises MaskingFailed: nothing remembered
            return self._store_element(key, walked, draft[1] or box[0])
        box = [False]

        def tracking(t: str, ctx: str | None) -> str:
            m = leaf(t, ctx)
            if m != t:
                box[0] = True
            return m

        walked, blanked = _walk(element, None, tracking)  # raises MaskingFailed: nothing remembered
        return self._store_element(key, walked, box[0] or blanked)

    def _store_element(self, key: tuple[bool, str], walked: Any, changed: bool) -> _Element:
        encoded = json.dumps(walked, ensure_ascii=False)
        hit = _Element(walked, changed, encoded)
        size = len(key[1]) + len(encoded)
        if size <= self.memo_max_chars // 8:
            self._elements[key] = hit
            self._elements_chars += size
            while self._elements_chars > self.memo_max_chars or len(self._elements) > self.memo_max_entries:
                (_, old_raw), old = self._elements.popitem(last=False)
                self._elements_chars -= len(old_raw) + len(old.encoded)
        return hit

    def _mask_array(
        self, text: str, elements: list[tuple[str, Any]], leaf: Callable[[str, str | None], str], content: bool
    ) -> tuple[str, bool, bool]:
        """A JSON array (a chat history): each element from the element memo or walked once, the result spliced from
        the elements' encoded forms -- exactly ``json.dumps`` of the masked list."""
        memo = self._elements
        parts: list[_Element] = []
        for raw, element in elements:  # a resent history is mostly hits: those are looked up inline
            key = (content, raw)
            hit = memo.get(key)
            if hit is None:
                hit = self._element(content, raw, element, leaf)
            else:
                memo.move_to_end(key)
            parts.append(hit)
        changed = any(p.changed for p in parts)
        limit = self.max_length
        if not changed and (limit <= 0 or len(text) <= limit):
            return text, False, False
        encoded = "[" + ", ".join(p.encoded for p in parts) + "]"
        dumped = encoded if changed else text
        if limit <= 0 or len(dumped) <= limit:
            return dumped, changed, False
        parts = _recent_messages(parts, limit)
        encoded = "[" + ", ".join(p.encoded for p in parts) + "]"
        if len(encoded) <= limit:
            return encoded, changed, True
        strings: list[str] = []
        sizes: list[int] = []
        for p in parts:
            s, z = p.strings()
            strings += s
            sizes += z
        n = _fit_length(strings, sizes, len(encoded), limit)
        if n is None:
            return truncate(encoded, limit), changed, True
        # Spliced again: only the elements holding a string longer than the cap are encoded anew.
        cut = (
            p.encoded if p.longest <= n else json.dumps(_cap_strings(p.walked, n), ensure_ascii=False) for p in parts
        )
        return "[" + ", ".join(cut) + "]", changed, True

    def _mask_str(self, text: str, leaf: Callable[[str, str | None], str], content: bool) -> tuple[str, bool, bool]:
        elements, parsed = self._parse(text)
        if elements is not None:
            return self._mask_array(text, elements, leaf, content)
        if parsed is _NOT_JSON:
            masked = leaf(text, None)
            changed = masked != text
            out = truncate(masked, self.max_length) if self.max_length > 0 else masked
            return out, changed, len(out) != len(masked)
        whole = self._element(content, text, parsed, leaf)  # walked by ``collect`` already, when it could be
        dumped = whole.encoded if whole.changed else text
        if self.max_length <= 0 or len(dumped) <= self.max_length:
            return dumped, whole.changed, False
        return _fit_json(whole.walked, self.max_length, encoded=whole.encoded), whole.changed, True

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


class _Pending:
    """A text of a draft element awaiting Presidio: its cache key, the text as it was, and the number it was (a
    number Presidio leaves alone stays a number)."""

    __slots__ = ("key", "number", "text")

    def __init__(self, key: bytes, text: str) -> None:
        self.key = key
        self.text = text
        self.number: int | None = None


_PREFIX_MIN = 512  # shortest array text looked up among recent arrays


class _Element:
    """A masked JSON array element: its masked value, whether masking changed it, and ``json.dumps`` of the masked
    value."""

    __slots__ = ("_sizes", "_strings", "changed", "encoded", "longest", "walked")

    def __init__(self, walked: Any, changed: bool, encoded: str) -> None:
        self.walked = walked
        self.changed = changed
        self.encoded = encoded
        self._strings: list[str] | None = None
        self._sizes: list[int] = []
        self.longest = 0

    def strings(self) -> tuple[list[str], list[int]]:
        """Its string values and their encoded lengths, what cutting a history to the length limit works on
        (computed the first time a history holding this element is too long)."""
        if self._strings is None:
            strings: list[str] = []
            _collect_strings(self.walked, strings)
            self._sizes = _encoded_sizes(strings)
            self.longest = max(map(len, strings), default=0)
            self._strings = strings
        return self._strings, self._sizes


def _element_key(element: Any) -> str:
    return json.dumps(element, ensure_ascii=False, separators=(",", ":"))


_DECODER = json.JSONDecoder()  # what json.loads uses: same scanner, same strictness
_JSON_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's own whitespace (json.loads accepts no other)


def _split_array(text: str, resume: tuple[int, list[tuple[str, Any]]] | None = None) -> list[tuple[str, Any]] | None:
    """The elements of a JSON array text as (element's JSON text, parsed element); ``None`` when ``text`` is not
    exactly one JSON array (json.loads then decides). Each element's text is the key of the element memo, so a resent
    message is recognised without encoding it again.

    ``resume``: (n, elements) when ``text[:n]`` is a known array up to (not including) its closing bracket, with
    those elements; parsing goes on after them. Requiring a comma next keeps that exact: a comma ends any element
    (``[1`` + ``2]`` is not ``[1, 2]``)."""
    # The pattern matches the empty string, so match() never returns None here.
    space = cast("Callable[..., re.Match[str]]", _JSON_SPACE.match)
    n = len(text)
    if resume is None:
        i = space(text).end()
        if text[i : i + 1] != "[":
            return None
        i = space(text, i + 1).end()
        out: list[tuple[str, Any]] = []
        if text[i : i + 1] == "]":
            return out if space(text, i + 1).end() == n else None
    else:
        i, known = resume
        i = space(text, i).end()
        if text[i : i + 1] != ",":
            return None
        out = list(known)
        i = space(text, i + 1).end()
    decode = _DECODER.raw_decode
    while True:
        try:
            value, j = decode(text, i)
        except ValueError:
            return None
        out.append((text[i:j], value))
        i = space(text, j).end()
        c = text[i : i + 1]
        if c == ",":
            i = space(text, i + 1).end()
        elif c == "]":
            return out if space(text, i + 1).end() == n else None
        else:
            return None


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


_WORD_BREAKS = re.compile(r"(?<=[a-z])(?=[A-Z])|[_\-.]+")


def _context_words(key: str | None) -> str | None:
    # "phone_number" / "billingAddress" -> "phone number" / "billing address": Presidio's context words are tokens.
    if not key:
        return None
    if len(key) <= 64:  # field names repeat endlessly; odd long keys are not worth remembering
        return _context_words_cached(key)
    return _WORD_BREAKS.sub(" ", key).lower().strip() or None


@functools.lru_cache(maxsize=2048)  # 2,048 field names of at most 64 characters
def _context_words_cached(key: str) -> str | None:
    return _WORD_BREAKS.sub(" ", key).lower().strip() or None


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
        if type(masked) is _Pending:  # a draft: the number comes back if Presidio leaves it alone
            masked.number = obj
            return masked, False
        return (obj if masked == s else masked), False
    return obj, False


def _is_message(element: Any) -> bool:
    return isinstance(element, dict) and isinstance(element.get("role"), str)


def _recent_messages(parts: list[_Element], limit: int) -> list[_Element]:
    """A chat history over the limit: what a reader needs most is the newest messages whole (the one the model is
    answering) and the system prompt, not every message cut short. Keeps a leading system message and then as many of
    the newest messages as fit whole (always the last one); the strings of what is kept are cut only if that is still
    too long. Arrays that are not GenAI/OpenAI-style messages are left to the string cut."""
    if len(parts) < 2 or not all(_is_message(p.walked) for p in parts):
        return parts
    head = parts[:1] if parts[0].walked.get("role") == "system" else []
    budget = limit - 2 - sum(len(p.encoded) + 2 for p in head)
    tail: list[_Element] = []
    for p in reversed(parts[len(head) :]):
        need = len(p.encoded) + 2
        if tail and need > budget:
            break
        tail.append(p)
        budget -= need
    if len(head) + len(tail) == len(parts):
        return parts
    return head + tail[::-1]


def _fit_json(obj: Any, limit: int, *, encoded: str | None = None) -> str:
    """Serialise ``obj`` within ``limit`` characters and still as valid JSON, by cutting its longest strings (each
    with a truncation marker) to the longest length that fits. Falls back to cutting the text when the structure alone
    is too big. ``encoded``: ``json.dumps(obj)``, if known."""
    if encoded is None:
        encoded = json.dumps(obj, ensure_ascii=False)
    strings: list[str] = []
    _collect_strings(obj, strings)
    n = _fit_length(strings, _encoded_sizes(strings), len(encoded), limit)
    if n is None:
        return truncate(encoded, limit)
    return json.dumps(_cap_strings(obj, n), ensure_ascii=False)


_CUT_ADJUSTED = re.compile("[<\ud800-\udbff]")  # where ``_cut_point`` may cut short of its limit


def _encoded_sizes(strings: list[str]) -> list[int]:
    """Per string: its ``json.dumps`` length, negated when cutting it is not simply ``text[:n]`` plus the marker
    (escaped characters, a possible mask token or surrogate pair at the cut)."""
    sizes = []
    for t in strings:
        size = len(_json_string(t))
        sizes.append(size if size == len(t) + 2 and _CUT_ADJUSTED.search(t) is None else -size)
    return sizes


def _fit_length(strings: list[str], sizes: list[int], total: int, limit: int) -> int | None:
    """The cap ``_cap_strings`` needs for a JSON text of ``total`` characters to fit in ``limit`` (binary search on
    the cap), or ``None`` when none does. ``strings``: every string value of it; ``sizes``: ``_encoded_sizes``.

    Each candidate's size is computed from the strings' lengths instead of building and encoding the cut structure:
    a plain string longer than the cap ``n`` takes ``n`` characters, quotes and the marker, whose number has as many
    digits as there are powers of ten up to what was cut -- counted by bisection over the sorted lengths."""
    fixed = total - sum(map(abs, sizes))  # everything but the strings (keys, punctuation, numbers)
    if fixed + 2 * len(strings) > limit:
        return None  # every string is at least its two quotes: nothing fits
    order = sorted(range(len(strings)), key=lambda i: len(strings[i]))
    lengths = [len(strings[i]) for i in order]
    below = [0]  # below[k]: encoded size of the k shortest strings, which a cap at lengths[k-1] leaves whole
    for i in order:
        below.append(below[-1] + abs(sizes[i]))
    plain = [lengths[j] for j, i in enumerate(order) if sizes[i] > 0]  # sorted
    odd = [i for i in order if sizes[i] < 0]
    odd_lengths = [len(strings[i]) for i in odd]

    def size(n: int) -> int:
        """``len(json.dumps(_cap_strings(obj, n)))``."""
        result = fixed + below[bisect_right(lengths, n)]  # the strings no longer than n stay whole
        cut = len(plain) - bisect_right(plain, n)
        result += cut * (2 + n + _MARKER_CHARS)
        power = 1
        while cut:  # digits of the cut counts: one per power of ten they reach
            result += cut
            power *= 10
            cut = len(plain) - bisect_left(plain, n + power)
        for i in odd[bisect_right(odd_lengths, n) :]:
            text = strings[i]
            at = _cut_point(text, n)
            body = at if -sizes[i] == len(text) + 2 else len(_json_string(text[:at])) - 2  # escapes lengthen it
            result += 2 + body + _MARKER_CHARS + len(str(len(text) - at))
        return result

    lo, hi, best = 0, (lengths[-1] if lengths else 0), None
    while lo <= hi:
        mid = (lo + hi) // 2
        if size(mid) <= limit:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best


def _collect_strings(obj: Any, out: list[str]) -> None:
    """Every string value (not keys) of a JSON structure: what ``_cap_strings`` cuts."""
    if isinstance(obj, str):
        out.append(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            _collect_strings(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _collect_strings(v, out)


def _cap_strings(obj: Any, n: int) -> Any:
    if isinstance(obj, str):
        return truncate(obj, n) if len(obj) > n else obj
    if isinstance(obj, dict):
        return {k: _cap_strings(v, n) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cap_strings(v, n) for v in obj]
    return obj
