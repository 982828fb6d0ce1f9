"""Words of a chat text for Presidio's context enhancer, without spaCy.

Pattern mode needs only token boundaries (Presidio looks for "phone", "ssn"... among the words before a weak match).
spaCy's blank English tokenizer gave them, but importing spaCy costs ~80 MB and a second of start-up in the masking
worker, for no model. This follows the same algorithm (split on whitespace, peel prefix and suffix punctuation, split
infixes, keep URLs and English contractions as spaCy does) with spaCy's English rules reduced to what changes the words
Presidio sees. ``tests/privacy/test_presidio_light.py`` compares it with spaCy's tokenizer on the evaluation sets, and
``benchmarks/bench_privacy.py`` checks the detections are the same.
"""

from __future__ import annotations

from collections.abc import Iterator

import regex

__all__ = ["words"]

_Q = r"""'"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉⟦⟧"""
_PUNCT = r"…,:;!?¿؟¡()\[\]{}<>_#*&。？！，、；：～·"
_CURRENCY = r"$£€¥฿₽₴₹₩₪₫₱₿"
_UNITS = (
    r"km|km²|km³|m|m²|m³|dm|dm²|dm³|cm|cm²|cm³|mm|mm²|mm³|ha|µm|nm|yd|in|ft|kg|g|mg|µg|t|lb|oz|m/s|km/h|kmh|mph|hPa|"
    r"Pa|mbar|mb|MB|kb|KB|gb|GB|tb|TB|T|G|M|K|%"
)
_ICONS = r"[\p{So}]"

# spaCy's English prefix, suffix and infix rules (spacy/lang/punctuation.py), as single regexes.
_PREFIX = regex.compile(rf"^(?:§|%|=|—|–|\+(?![0-9])|\.\.+|…|[{_PUNCT}]|[{_Q}]|[{_CURRENCY}]|{_ICONS})")
_SUFFIX = regex.compile(
    rf"(?:\.\.+|…|[{_PUNCT}]|[{_Q}]|{_ICONS}|'s|'S|’s|’S|—|–|(?<=[0-9])\+|(?<=°[FfCcKk])\."
    rf"|(?<=[0-9])(?:[{_CURRENCY}]|US\$|C\$|A\$)|(?<=[0-9])(?:{_UNITS})"
    rf"|(?<=[0-9\p{{Ll}}%²\-+…{_PUNCT}{_Q}])\.|(?<=\p{{Lu}}\p{{Lu}})\.)$"
)
_INFIX = regex.compile(
    rf"\.\.+|…|{_ICONS}|(?<=[0-9])[+\-*^](?=[0-9-])|(?<=[\p{{Ll}}{_Q}])\.(?=[\p{{Lu}}{_Q}])"
    r"|(?<=\p{L}),(?=\p{L})|(?<=[\p{L}0-9])(?:-|–|—|--|---|——|~)(?=\p{L})|(?<=[\p{L}0-9])[:<>=/](?=\p{L})"
)
# What spaCy keeps whole: URLs (its url_match) and English contractions (its tokenizer exceptions).
_URL = regex.compile(
    r"^(?:[a-z][a-z0-9+.-]*://)?(?:[^\s/@:]+(?::[^\s/@]*)?@)?(?:(?:[\w-]+\.)+[a-z]{2,}|(?:\d{1,3}\.){3}\d{1,3})"
    r"(?::\d+)?(?:[/?#]\S*)?$|^[\w.+-]+@[\w-]+(?:\.[\w-]+)+$",
    regex.I,
)
_TIME = regex.compile(r"^((?:1[0-2]|0?[1-9]))([ap]m|[ap]\.m\.)$", regex.I)  # "5pm": spaCy's exceptions split it
# Apostrophe-less contractions spaCy splits ("dont" -> "do", "nt"; "id" -> "i", "d").
_BARE_CONTRACTION = regex.compile(
    r"^(do|does|did|ca|wo|is|are|was|were|has|have|had|could|should|would|must|need|ai)(nt)$|^(i)(d|m|ve)$", regex.I
)
# Abbreviations spaCy keeps with their period (its English exceptions): "Dr.", "Mrs.", single letters.
_ABBREV = regex.compile(
    r"^(?:\p{L}|Mr|Mrs|Ms|Dr|St|Jr|Sr|Mt|Inc|Ltd|Co|Corp|vs|Prof|Gen|Gov|Sen|Rep|Rev|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|"
    r"Sept|Oct|Nov|Dec|Ala|Ariz|Ark|Calif|Colo|Conn|Del|Fla|Ga|Ill|Ind|Kan|Ky|La|Md|Mass|Mich|Minn|Miss|Mo|Mont|Neb|"
    r"Nev|Okla|Ore|Pa|Tenn|Va|Wash|Wis)\.$"
)
_CONTRACTION = regex.compile(r"^(\p{L}+?)(n['’]t|['’](?:s|m|re|ve|ll|d))$", regex.I)
_CHUNK = regex.compile(r"\S+")


def words(text: str) -> Iterator[tuple[int, str]]:
    """(offset, word) for every non-whitespace token of ``text``, in order."""
    for m in _CHUNK.finditer(text):
        chunk = m.group()
        if chunk.isascii() and (chunk.isdigit() or (chunk.isalpha() and _BARE_CONTRACTION.match(chunk) is None)):
            # Most chunks are a plain word or number, which no rule splits: prefixes, suffixes and infixes all need
            # punctuation, a symbol or a digit-letter mix (units, "5pm"); of the exceptions only a bare contraction
            # ("dont", "im") is all letters.
            yield m.start(), chunk
        else:
            yield from _split(chunk, m.start())


def _split(chunk: str, at: int) -> Iterator[tuple[int, str]]:
    prefixes: list[str] = []
    suffixes: list[str] = []
    last = -1
    while chunk and len(chunk) != last and not _whole(chunk):
        last = len(chunk)
        pre = _PREFIX.search(chunk)
        if pre:
            prefixes.append(pre.group())
            chunk = chunk[pre.end() :]
        suf = _SUFFIX.search(chunk) if chunk else None
        if suf and suf.start() > 0:
            suffixes.append(suf.group())
            chunk = chunk[: suf.start()]
        elif suf and not pre:
            suffixes.append(suf.group())
            chunk = ""
    for p in prefixes:
        yield at, p
        at += len(p)
    if chunk:
        yield from _core(chunk, at)
        at += len(chunk)
    for s in reversed(suffixes):
        yield at, s
        at += len(s)


def _whole(chunk: str) -> bool:
    return any(r.match(chunk) for r in (_CONTRACTION, _TIME, _ABBREV)) or _bare_contraction(chunk) is not None


def _bare_contraction(chunk: str) -> regex.Match[str] | None:
    # spaCy lists these in lower case and capitalised only: "dont", "Dont", "id", "Id" but not "ID".
    return None if chunk.isupper() and len(chunk) > 1 else _BARE_CONTRACTION.match(chunk)


def _core(chunk: str, at: int) -> Iterator[tuple[int, str]]:
    pair = _CONTRACTION.match(chunk) or _TIME.match(chunk) or _bare_contraction(chunk)
    if pair:
        first, second = [g for g in pair.groups() if g]
        yield at, first
        yield at + len(first), second
        return
    if _URL.match(chunk) or _ABBREV.match(chunk):
        yield at, chunk
        return
    start = 0
    for m in _INFIX.finditer(chunk):
        if m.start() == 0:
            continue
        if m.start() != start:
            yield at + start, chunk[start : m.start()]
        if m.end() != m.start():
            yield at + m.start(), m.group()
        start = m.end()
    if start < len(chunk):
        yield at + start, chunk[start:]
