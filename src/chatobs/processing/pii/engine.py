"""Presidio set-up for chat text: an analyzer that needs no downloaded model and never touches the network, a
recognizer set tuned on chat messages and code, per-entity operators (replace / mask / redact / keyed hash).

Everything here runs in the background (the pipeline thread or the masking worker process), never on a request.
Engines are built once per configuration and shared (Presidio's engines are thread-safe for analysis).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...config import ConfigError
from ...core.hashing import keyed_hash
from .analysis import run_recognizers
from .replace import replace_entities

if TYPE_CHECKING:
    from ...config import Settings

__all__ = [
    "NER_ENTITIES",
    "PATTERN_ENTITIES",
    "PiiConfig",
    "PiiEngine",
    "config_from_settings",
    "get_engine",
    "keyed_hash",
    "masking_unavailable",
]

# What chatobs masks by default. URL is left out on purpose: Presidio's URL recognizer flags file names
# ("main.py", "config.yaml") and links in chat are rarely personal; driver-licence/passport/bank-number recognizers
# are left out because they fire on short tokens ("v3", "A1234567") all over code.
PATTERN_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "IP_ADDRESS",
    "CRYPTO",
    "STREET_ADDRESS",
)
NER_ENTITIES: tuple[str, ...] = ("PERSON", "LOCATION")
OPERATORS = ("replace", "mask", "redact", "hash")

# Addresses nobody needs hidden and that fill code and logs.
_DEFAULT_ALLOW = ("127.0.0.1", "0.0.0.0", "::1", "::", "255.255.255.255", "localhost")

NER_INSTALL_HINT = (
    "CHATOBS_PII=ner needs the spaCy model {model!r}, which is not installed. Install it with "
    "`python -m spacy download {model}` (or `pip install` the model's wheel from "
    "https://github.com/explosion/spacy-models/releases), or set CHATOBS_PII_NER_MODEL to an installed model, "
    "or use CHATOBS_PII=patterns."
)


@dataclass(frozen=True)
class PiiConfig:
    """The masking settings that matter to Presidio; plain data so it can be sent to the worker process."""

    mode: str = "patterns"  # patterns | ner | off
    entities: tuple[str, ...] = PATTERN_ENTITIES
    default_operator: str = "replace"
    operators: tuple[tuple[str, str], ...] = ()  # (ENTITY, op) overrides
    score_threshold: float = 0.4
    allow_list: tuple[str, ...] = ()
    recognizers_file: str | None = None
    ner_model: str = "en_core_web_sm"
    nlp: str = "tokenizer"  # tokenizer (words.py: context words work) | noop | spacy (spaCy's tokenizer, reference)
    precheck: bool = True
    hash_key: str = field(default="", repr=False)  # hex; never printed

    def fingerprint(self) -> str:
        """Identifies the masking behaviour (cache keys); the hash key enters only as a digest."""
        data = asdict(self)
        data["hash_key"] = hashlib.sha256(self.hash_key.encode()).hexdigest()[:16]
        return hashlib.blake2b(json.dumps(data, sort_keys=True).encode(), digest_size=8).hexdigest()

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PiiConfig:
        data = json.loads(text)
        data["entities"] = tuple(data["entities"])
        data["operators"] = tuple(tuple(p) for p in data["operators"])
        data["allow_list"] = tuple(data["allow_list"])
        return cls(**data)


def parse_operators(spec: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``"replace,EMAIL_ADDRESS:hash"`` -> ("replace", (("EMAIL_ADDRESS", "hash"),)). Raises ConfigError."""
    default = "replace"
    per: list[tuple[str, str]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        entity, sep, op = part.rpartition(":")
        op = op.strip().lower()
        if op not in OPERATORS:
            raise ConfigError(
                f"CHATOBS_PII_OPERATOR={spec!r}: unknown operator {op!r}; expected {', '.join(OPERATORS)}, "
                "optionally per entity as ENTITY:operator (e.g. `replace,EMAIL_ADDRESS:hash`)"
            )
        if sep:
            per.append((entity.strip().upper(), op))
        else:
            default = op
    return default, tuple(per)


def config_from_settings(settings: Settings) -> PiiConfig:
    default_op, per = parse_operators(settings.pii_operator)
    mode = settings.pii_mode
    if settings.pii_entities:
        entities = tuple(e.strip().upper() for e in settings.pii_entities)
    else:
        entities = PATTERN_ENTITIES + (NER_ENTITIES if mode == "ner" else ())
        if settings.pii_recognizers_file:
            entities += tuple(e for e in _custom_entities(str(settings.pii_recognizers_file)) if e not in entities)
    key = settings.hash_secret.get_secret_value().encode().hex() if settings.hash_secret is not None else ""
    return PiiConfig(
        mode=mode,
        entities=entities,
        default_operator=default_op,
        operators=per,
        score_threshold=settings.pii_score_threshold,
        allow_list=tuple(settings.pii_allow_list),
        recognizers_file=str(settings.pii_recognizers_file) if settings.pii_recognizers_file else None,
        ner_model=settings.pii_ner_model,
        hash_key=key,
    )


def check_config(cfg: PiiConfig) -> None:
    """Fail at ``init()`` (not later, in the background) on what can be checked cheaply."""
    if cfg.mode == "ner":
        import importlib.util

        import spacy.util

        if not (
            spacy.util.is_package(cfg.ner_model)
            or importlib.util.find_spec(cfg.ner_model)
            or Path(cfg.ner_model).exists()
        ):
            raise ConfigError(NER_INSTALL_HINT.format(model=cfg.ner_model))
    if cfg.recognizers_file:
        _load_custom_recognizers(cfg.recognizers_file)  # raises ConfigError on a bad file


PRESIDIO_MISSING = (
    "chatobs: PII masking cannot run: presidio-analyzer is not installed (CHATOBS_PII={mode}). Content is removed from "
    "every span instead (masking fails closed: `<chatobs: content removed, masking error>`). Fix: "
    "`pip install 'chatobs[presidio]'`, or set CHATOBS_PII=off to export content unmasked (secrets are still scrubbed)."
)


def masking_unavailable(cfg: PiiConfig) -> str | None:
    """Why masking cannot run in this environment (one line naming the fix), or ``None``. Cheap: finds the package
    without importing it."""
    import importlib.util

    if cfg.mode == "off":
        return None
    try:
        found = importlib.util.find_spec("presidio_analyzer") is not None
    except (ImportError, ValueError):
        found = False
    return None if found else PRESIDIO_MISSING.format(mode=cfg.mode)


# --- tuned recognizers ----------------------------------------------------------------------------------------------

_STREET_SUFFIXES = (
    # USPS street suffixes (singular; an optional plural "s" is added below), plus common abbreviations.
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|Circle|Cir|"
    "Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Trl|Crossing|Crossroad|Xing|Loop|Alley|Plaza|Plz|Ridge|Park|Pike|Row|"
    "Run|Path|Walk|Point|Pt|Height|Hts|Hill|Mountain|Mount|Estate|Garden|Grove|Glen|Harbor|Haven|Island|Junction|Key|"
    "Knoll|Lake|Landing|Light|Manor|Meadow|Mill|Orchard|Oval|Pass|Passage|Pine|Plain|Port|Prairie|Radial|Ranch|Rapid|"
    "Rest|Route|Shoal|Shore|Spring|Spur|Station|Stream|Summit|Throughway|Trace|Track|Tunnel|Turnpike|Union|Valley|"
    "Via|View|Village|Ville|Vista|Well|Fork|Forge|Ford|Forest|Flat|Field|Fall|Extension|Expressway|Divide|Dale|Dam|"
    "Curve|Crest|Creek|Corner|Common|Cliff|Club|Center|Causeway|Camp|Canyon|Cape|Burg|Brook|Bridge|Branch|Bottom|"
    "Bluff|Bend|Beach|Bayou|Arcade|Green|Cove|Ferry|Freeway|Gateway|Isle|Lock|Lodge|Motorway|Neck|Overpass|Skyway|"
    "Stravenue|Underpass|Wall|Inlet|Crescent|Hollow|Loaf|Bypass|Mission|Mall|Ramp|Trafficway|Harbour|Close|Mews|Gate|"
    "Gardens|Rise|Wharf|Wynd|Parade|Quay|Esplanade|Cres|Fort|Ft"
)
# "123 Main Street", "0487 Hopkins Squares Suite 435", optionally ", Springfield, IL 62704".
_STREET = (
    r"\b\d{1,6}[A-Za-z]?\s+(?:[NSEW]\.?\s+|North\s+|South\s+|East\s+|West\s+)?(?:[A-Z][a-z]+\.?\s+){1,3}"
    rf"(?:{_STREET_SUFFIXES})s?\b\.?"
    r"(?:,?\s+(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|#)\s*[A-Za-z0-9-]+)?"
    r"(?:,?\s+(?:[A-Z][a-z]+\s?){1,3},\s+[A-Z]{2}\s+\d{5}(?:-\d{4})?)?"
)
# City, ST 12345 on its own line (the second line of a postal address).
_CITY_STATE_ZIP = r"\b(?:[A-Z][a-z]+\s){0,2}[A-Z][a-z]+,\s[A-Z]{2}\s\d{5}(?:-\d{4})?\b"

# North-American numbers written with separators (what people type in chat), with optional extension.
_PHONE_NANP = (
    r"(?<![\w.+-])(?:(?:\+?1|001)[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}"
    r"(?:\s?(?:x|ext\.?|extension)\s?\d{1,6})?(?![\w-])"
)
# International: +CC then 6-14 more digits in groups.
_PHONE_INTL = (
    r"(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?)(?:[\s.-]?\d{2,4}){2,4}(?:\s?(?:x|ext\.?)\s?\d{1,6})?(?![\w-])"
)
# Ten bare digits: only with a context word (phone, call...), which the tokenizer engine supplies.
_PHONE_BARE = r"(?<![\w.-])\d{10}(?:x\d{1,6})?(?![\w-])"
# European national formats: a trunk prefix "0" in brackets or leading 10-11 digits: (0161) 4960170, 01134960128.
_PHONE_TRUNK = r"(?<![\w.+-])\(0\d{2,5}\)\s?\d{3,8}(?:[\s-]\d{2,6})?(?![\w-])"
_PHONE_TRUNK_BARE = r"(?<![\w.+-])0\d{9,10}(?![\w.-])"
_PHONE_TRUNK_GROUPS = r"(?<![\w.+-])0\d{2,4}[\s-]\d{3,8}(?:[\s-]\d{3,4})?(?![\w.-])"

# Card numbers with any grouping, 12-19 digits (Maestro has 12), issuer prefixes only (keeps 13-digit millisecond timestamps out);
# Presidio's validator adds the Luhn check.
_CARD = r"\b(?:4\d{3}|5\d{3}|2[2-7]\d{2}|2131|1800|3[47]\d{2}|3[068]\d{2}|35\d{2}|6\d{3}|0604)(?:[\s-]?\d){8,15}\b"

_ETH = r"\b0x[a-fA-F0-9]{40}\b"

# libphonenumber's findings score this, below any sane threshold unless a context word lifts them.
LIBPHONE_SCORE = 0.3

_PHONE_CONTEXT = [
    "phone",
    "call",
    "mobile",
    "cell",
    "tel",
    "telephone",
    "number",
    "reach",
    "text",
    "whatsapp",
    "fax",
    "contact",
]


class _Recognizers:
    """Builds the recognizer set. Import of Presidio is deferred to here (optional dependency)."""

    @staticmethod
    def build(cfg: PiiConfig) -> list[Any]:
        from presidio_analyzer import Pattern, PatternRecognizer
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            CryptoRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            IpRecognizer,
            PhoneRecognizer,
            UsSsnRecognizer,
        )

        class OfflineEmailRecognizer(EmailRecognizer):
            """Presidio's e-mail recognizer validates the domain with ``tldextract``, which by default downloads the
            public-suffix list on first use with no timeout; this one uses the snapshot bundled with tldextract."""

            def validate_result(self, pattern_text: str) -> bool:
                return _offline_tld()(pattern_text).fqdn != ""

        # Every recognizer is loaded; the configured entities are chosen per call, so one analyzer serves every
        # configuration (building one is the expensive part).
        wanted = set(PATTERN_ENTITIES)
        recs: list[Any] = []
        if "EMAIL_ADDRESS" in wanted:
            recs.append(OfflineEmailRecognizer())
        if "PHONE_NUMBER" in wanted:

            class ContextPhoneRecognizer(PhoneRecognizer):
                # libphonenumber also accepts bare digit runs (IDs, timestamps in code); below the threshold unless
                # a context word ("phone", "call") is near. The separated forms are matched by the patterns below.
                # Its matcher is the dearest recognizer (one pass per region): PiiEngine runs it only when one of its
                # findings could reach the threshold (a context word before a digit, or in the field's name).
                SCORE = LIBPHONE_SCORE
                chatobs_libphone = True

            recs.append(ContextPhoneRecognizer(context=_PHONE_CONTEXT, leniency=1))
            recs.append(
                PatternRecognizer(
                    supported_entity="PHONE_NUMBER",
                    name="ChatPhoneRecognizer",
                    patterns=[
                        Pattern("phone (nanp)", _PHONE_NANP, 0.6),
                        Pattern("phone (intl)", _PHONE_INTL, 0.55),
                        Pattern("phone (bare 10 digits)", _PHONE_BARE, 0.2),
                        Pattern("phone (trunk prefix)", _PHONE_TRUNK, 0.6),
                        Pattern("phone (trunk prefix, bare)", _PHONE_TRUNK_BARE, 0.45),
                        Pattern("phone (trunk prefix, groups)", _PHONE_TRUNK_GROUPS, 0.45),
                    ],
                    context=_PHONE_CONTEXT,
                )
            )
        if "CREDIT_CARD" in wanted:
            base = list(CreditCardRecognizer.PATTERNS)
            recs.append(CreditCardRecognizer(patterns=[*base, Pattern("card (any grouping)", _CARD, 0.6)]))
        if "US_SSN" in wanted:
            recs.append(UsSsnRecognizer())
        if "IBAN_CODE" in wanted:
            recs.append(IbanRecognizer())
        if "IP_ADDRESS" in wanted:
            recs.append(IpRecognizer())
        if "CRYPTO" in wanted:
            recs.append(CryptoRecognizer())
            recs.append(
                PatternRecognizer(
                    supported_entity="CRYPTO",
                    name="EthereumRecognizer",
                    patterns=[Pattern("eth", _ETH, 0.6)],
                    context=["eth", "ethereum", "wallet", "address", "send"],
                )
            )
        if "STREET_ADDRESS" in wanted:
            recs.append(
                PatternRecognizer(
                    supported_entity="STREET_ADDRESS",
                    name="StreetAddressRecognizer",
                    patterns=[Pattern("street", _STREET, 0.6), Pattern("city state zip", _CITY_STATE_ZIP, 0.5)],
                    context=["address", "live", "ship", "street", "deliver", "mail"],
                )
            )
        if cfg.recognizers_file:
            recs.extend(_load_custom_recognizers(cfg.recognizers_file))
        return recs


_TLD: Any = None


def _offline_tld() -> Any:
    global _TLD
    if _TLD is None:
        import tldextract

        # No URLs and no cache directory: the bundled public-suffix snapshot only, so no network call ever.
        _TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)
    return _TLD


def _custom_entities(path: str) -> list[str]:
    """Entity names a recognizers file defines (no Presidio import: runs in ``init()``)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"CHATOBS_PII_RECOGNIZERS_FILE={path!r}: cannot read the file: {exc}") from None
    items = data.get("recognizers") if isinstance(data, dict) else data
    names = [
        str(i.get("entity") or i.get("supported_entity") or "").upper() for i in items or [] if isinstance(i, dict)
    ]
    return [n for n in names if n]


def _load_custom_recognizers(path: str) -> list[Any]:
    """Recognizers from a YAML file::

        recognizers:
          - name: ticket
            entity: TICKET_ID
            regex: 'TCK-\\d{6}'
            score: 0.8            # optional, default 0.6
            context: [ticket]     # optional

    Presidio's own recognizer-YAML keys (``supported_entity``, ``patterns: [{name, regex, score}]``) work too.
    """
    import yaml
    from presidio_analyzer import Pattern, PatternRecognizer

    where = f"CHATOBS_PII_RECOGNIZERS_FILE={path!r}"
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{where}: cannot read the file: {exc}") from None
    items = data.get("recognizers") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ConfigError(f"{where}: expected a list under `recognizers:` (name, entity, regex, score, context)")
    recs = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: recognizer #{i + 1} must be a mapping")
        entity = item.get("entity") or item.get("supported_entity")
        if not entity:
            raise ConfigError(f"{where}: recognizer #{i + 1} has no `entity`")
        raw = item.get("patterns") or (
            [{"regex": item.get("regex"), "score": item.get("score", 0.6)}] if item.get("regex") else []
        )
        if not raw:
            raise ConfigError(f"{where}: recognizer {entity!r} has no `regex`")
        patterns = []
        for j, p in enumerate(raw):
            try:
                re.compile(p["regex"])
                patterns.append(Pattern(p.get("name", f"{entity}-{j}"), p["regex"], float(p.get("score", 0.6))))
            except (re.error, KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"{where}: recognizer {entity!r} has a bad pattern: {exc}") from None
        recs.append(
            PatternRecognizer(
                supported_entity=str(entity).upper(),
                name=str(item.get("name", entity)),
                patterns=patterns,
                context=list(item.get("context") or []) or None,  # type: ignore[arg-type]  # None is presidio's default
            )
        )
    return recs


# --- NLP engines ---------------------------------------------------------------------------------------------------


def _nlp_engine(cfg: PiiConfig) -> Any:
    if cfg.mode == "ner":
        from presidio_analyzer.nlp_engine import SpacyNlpEngine

        check_config(cfg)  # never let Presidio's own auto-download run
        engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": cfg.ner_model}])
        engine.load()
        return engine
    if cfg.nlp == "spacy":
        return _spacy_tokenizer_engine()
    return _words_engine(tokenize=cfg.nlp != "noop")


def _words_engine(tokenize: bool) -> Any:
    """Pattern mode's NLP engine: no model and no spaCy. With ``tokenize``, the words of the text (``words.py``) with
    lower-cased words as lemmas, so Presidio's context enhancer sees "phone" or "ssn" next to a weak match; without,
    no tokens (like Presidio's NoOpNlpEngine, which needs spaCy for its empty Doc)."""
    from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine

    from .words import words  # needs ``regex``, which comes with presidio-analyzer

    class LazyArtifacts(NlpArtifacts):
        """Splits the text into words only when something reads them: Presidio reads them only to enhance a finding
        by context, and most texts have no finding; the pattern recognizers never look at them."""

        def __init__(self, text: str, engine: Any, language: str) -> None:  # no super(): it would split eagerly
            self._text = text
            self.entities = []
            self.scores = []
            self.nlp_engine = engine
            self.language = language

        def __getattr__(self, name: str) -> Any:
            if name not in ("tokens", "tokens_indices", "lemmas", "keywords"):
                raise AttributeError(name)
            found = list(words(self._text)) if tokenize else []
            self.tokens = [w for _, w in found]  # type: ignore[assignment]  # presidio reads it as a sequence only
            self.tokens_indices = [i for i, _ in found]
            self.lemmas = [w.lower() for _, w in found]
            self.keywords = _Keywords(self.set_keywords(self.nlp_engine, self.lemmas, self.language))
            return getattr(self, name)

    class WordsNlpEngine(NlpEngine):
        def __init__(self) -> None:
            self.nlp: dict[str, None] | None = None

        def load(self) -> None:
            self.nlp = {"en": None}

        def is_loaded(self) -> bool:
            return self.nlp is not None

        def process_text(self, text: str, language: str) -> Any:
            return LazyArtifacts(text, self, language)

        def process_batch(
            self,
            texts: Any,
            language: str,
            batch_size: int = 1,
            n_process: int = 1,
            as_tuples: bool = False,
            **kwargs: Any,
        ) -> Any:
            for item in texts:
                text, ctx = item if as_tuples else (item, None)
                yield (text, self.process_text(str(text), language)) + ((ctx,) if as_tuples else ())

        def is_stopword(self, word: str, language: str) -> bool:
            return word.lower() in _STOP

        def is_punct(self, word: str, language: str) -> bool:
            return bool(word) and all(not c.isalnum() for c in word)

        def get_supported_entities(self) -> list[str]:
            return []

        def get_supported_languages(self) -> list[str]:
            return ["en"]

    engine = WordsNlpEngine()
    engine.load()
    return engine


class _Keywords(list[str]):
    """Presidio's list of a text's keywords, with a set for ``in``: its context enhancer asks ``lemma in keywords``
    for every word it walks back over (a scan of the whole list each time)."""

    def __init__(self, items: list[str]) -> None:
        super().__init__(items)
        self._set = frozenset(items)

    def __contains__(self, item: object) -> bool:
        return item in self._set


def _spacy_tokenizer_engine() -> Any:
    """The engine pattern mode used before ``words.py``: a blank English spaCy pipeline's tokenizer. Kept as the
    reference the tests and the benchmark compare ``words.py`` with (``PiiConfig(nlp="spacy")``)."""
    import spacy
    from presidio_analyzer.nlp_engine import NlpArtifacts

    base = _words_engine(tokenize=False)
    tok = spacy.blank("en").tokenizer

    def process_text(text: str, language: str) -> Any:
        doc = tok(text)
        return NlpArtifacts(
            entities=[],
            tokens=doc,
            tokens_indices=[t.idx for t in doc],
            lemmas=[t.lower_ for t in doc],
            nlp_engine=base,
            language=language,
            scores=[],
        )

    base.process_text = process_text
    return base


_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "is",
        "are",
        "was",
        "my",
        "me",
        "i",
        "you",
        "your",
        "to",
        "of",
        "and",
        "or",
        "at",
        "on",
        "in",
        "for",
        "it",
        "this",
        "that",
        "be",
        "with",
    ]
)


# --- the engine ------------------------------------------------------------------------------------------------------

# Cheap necessary conditions per entity: a text matching none of the enabled ones cannot hold that entity, so
# Presidio is skipped for it, and a text matching some runs only those entities' recognizers. Measured in
# benchmarks/bench_privacy.py to cost no recall.
_TRIGGERS: dict[str, str] = {
    "EMAIL_ADDRESS": r"@",
    "PHONE_NUMBER": r"\d(?:\D{0,3}\d){5}",
    "CREDIT_CARD": r"\d(?:\D{0,2}\d){11}",
    "US_SSN": r"\d(?:\D?\d){8}",
    "IBAN_CODE": r"[A-Za-z]{2}\s?\d{2}",
    "IP_ADDRESS": r"\d{1,3}\.\d{1,3}\.|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:",
    "CRYPTO": r"(?:bc1|[13])[a-zA-HJ-NP-Z0-9]{25}|0x[0-9a-fA-F]{40}",
    "STREET_ADDRESS": r"\d[A-Za-z]?\s+(?:[NSEW]\.?\s+)?[A-Z][a-z]|[A-Z][a-z]+,\s[A-Z]{2}\s\d{5}",
}
# Presidio's context enhancer matches a context word as a substring of a word's lemma (the lower-cased word), so a
# lower-cased text without any of these cannot lift a libphonenumber finding over the threshold.
_PHONE_CONTEXT_RE = re.compile("|".join(map(re.escape, _PHONE_CONTEXT)))
_DIGIT = re.compile(r"\d")  # Unicode decimal digits, as libphonenumber reads them


def precheck_pattern(cfg: PiiConfig) -> re.Pattern[str] | None:
    """A regex that every text holding an enabled entity matches; ``None`` when no such cheap test exists (custom
    recognizers, NER entities: then every text goes to Presidio)."""
    if not cfg.precheck or cfg.recognizers_file or not cfg.entities:
        return None
    triggers = [_TRIGGERS.get(e) for e in cfg.entities]
    if not all(triggers):
        return None
    return re.compile("|".join(t for t in triggers if t))


def entity_gates(cfg: PiiConfig) -> list[tuple[str, re.Pattern[str] | None]]:
    """(entity, trigger) for each enabled entity; ``None`` where every text must be analyzed for it (no trigger,
    pre-check off, or an entity a custom recognizer also finds, whose matches the trigger does not know)."""
    custom = set(_custom_entities(cfg.recognizers_file)) if cfg.recognizers_file else set()
    out: list[tuple[str, re.Pattern[str] | None]] = []
    for entity in cfg.entities:
        trigger = _TRIGGERS.get(entity) if cfg.precheck and entity not in custom else None
        out.append((entity, re.compile(trigger) if trigger else None))
    return out


def _hashed(entity: str, key: str, value: str) -> str:
    return f"<{entity}:{keyed_hash(key, value)}>"


class PiiEngine:
    """Presidio's analyzer for one ``PiiConfig``, and the replacement of what it finds (``replace.py``)."""

    def __init__(self, cfg: PiiConfig) -> None:
        self.cfg = cfg
        self.analyzer = _analyzer(cfg)
        self.allow = list(dict.fromkeys(_DEFAULT_ALLOW + cfg.allow_list))
        self._gates = entity_gates(cfg)
        # libphonenumber can be skipped only where its bare score cannot pass the threshold on its own.
        self._libphone_gated = cfg.precheck and cfg.score_threshold > LIBPHONE_SCORE
        self._words_nlp = cfg.mode == "patterns" and cfg.nlp in ("tokenizer", "noop")  # words.py's chunks, or none
        self._allow = frozenset(self.allow)
        import regex  # comes with presidio-analyzer; ``words.py`` splits chunks at its ``\s``

        self._last_space = regex.compile(r"(?r)\s")  # searched backwards: the last whitespace before a position
        per = dict(cfg.operators)
        self._operators = {e: self._operator(per.get(e, cfg.default_operator), e) for e in set(cfg.entities) | set(per)}
        self._default = self._operator(cfg.default_operator, "PII")

    def _operator(self, op: str, entity: str) -> Callable[[str], str]:
        if op == "mask":
            return lambda v: "*" * len(v)
        if op == "redact":
            return lambda v: ""
        if op == "hash":
            key = self.cfg.hash_key
            if not key:
                raise ConfigError("CHATOBS_HASH_SECRET: required when CHATOBS_PII_OPERATOR uses `hash`")
            return functools.partial(_hashed, entity, key)
        token = f"<{entity}>"
        return lambda v: token

    def _replacement(self, entity_type: str, value: str) -> str:
        return self._operators.get(entity_type, self._default)(value)

    def entities_for(self, text: str) -> list[str]:
        """The enabled entities this text may hold (those whose trigger it matches); empty: nothing to analyze."""
        return [e for e, gate in self._gates if gate is None or gate.search(text) is not None]

    def might_contain(self, text: str) -> bool:
        return bool(self.entities_for(text))

    def analyze(self, text: str, context: list[str] | None = None) -> list[Any]:
        """What Presidio's ``AnalyzerEngine.analyze`` returns for this text, the enabled entities and the threshold,
        by fewer steps: only the recognizers of the entities whose trigger the text matches, libphonenumber only when
        one of its findings could reach the threshold, context enhancement only when something was found and in
        place (``analysis.py``)."""
        entities = self.entities_for(text)
        if not entities:
            return []
        recognizers = self._recognizers(entities)
        if self._libphone_gated and not self._libphone_may_count(text, context):
            recognizers = [r for r in recognizers if not getattr(r, "chatobs_libphone", False)]
        return run_recognizers(
            self.analyzer, recognizers, text, entities, self.cfg.score_threshold, self._allow, context or None
        )

    def analyze_with_presidio(self, text: str, context: list[str] | None = None) -> list[Any]:
        """Presidio's own ``AnalyzerEngine.analyze`` with every enabled entity: the reference ``analyze`` must equal
        (tests, ``bench_privacy``)."""
        return self.analyzer.analyze(
            text=text,
            language="en",
            entities=list(self.cfg.entities),
            score_threshold=self.cfg.score_threshold,
            allow_list=self.allow,
            context=context or None,
        )

    def _recognizers(self, entities: list[str]) -> list[Any]:
        return self.analyzer.registry.get_recognizers(language="en", entities=entities)

    def _libphone_may_count(self, text: str, context: list[str] | None) -> bool:
        """Whether a libphonenumber finding could be lifted over the threshold by a context word. Presidio's enhancer
        looks for a context word in the lemmas of the finding's word and the words before it, and in the field
        context; a lemma is a lower-cased word, and words never cross whitespace. So a context word must occur in the
        field context, or in the lower-cased text at a place after which (from the start of its whitespace-separated
        chunk) a digit follows: every finding holds a digit."""
        if context and any(_PHONE_CONTEXT_RE.search(c.lower()) for c in context):
            return True
        lowered = text.lower()
        found = _PHONE_CONTEXT_RE.search(lowered)
        if found is None:
            return False
        if not self._words_nlp or len(lowered) != len(text):  # other tokenizers; or offsets moved by lower()
            return True
        space = self._last_space.search(text, 0, found.start())  # where the context word's chunk starts
        return _DIGIT.search(text, space.end() if space else 0) is not None

    def mask(self, text: str, context: str | None = None) -> str:
        if not text:
            return text
        results = self.analyze(text, [context] if context else None)  # [] at once when no trigger matches
        if not results:
            return text
        return replace_entities(text, results, self._replacement)

    def mask_many(self, items: list[tuple[str, str | None]], deadline: float | None = None) -> list[str | bool | None]:
        """Mask each (text, context): the masked text, ``None`` for items not reached before ``deadline``, ``False``
        for an item whose masking raised (the caller fails closed for those; one bad text spoils nothing else)."""
        out: list[str | bool | None] = []
        for text, ctx in items:
            if deadline is not None and time.monotonic() > deadline:
                out.extend([None] * (len(items) - len(out)))
                break
            try:
                out.append(self.mask(text, ctx))
            except Exception as exc:  # noqa: BLE001
                _log_item_error(exc)
                out.append(False)
        return out


def _log_item_error(exc: Exception) -> None:
    from ...core.guard import log_limited

    log_limited("pii-mask-item", "chatobs: masking a text failed (content dropped): %s: %s", type(exc).__name__, exc)


_ENGINES_LOCK = threading.RLock()
_ANALYZERS: dict[tuple[Any, ...], Any] = {}  # one per recognizer set: a process has one or two


def _analyzer(cfg: PiiConfig) -> Any:
    """The AnalyzerEngine shared by every configuration with the same recognizers and NLP engine."""
    key = (cfg.mode, cfg.nlp, cfg.ner_model if cfg.mode == "ner" else None, cfg.recognizers_file)
    with _ENGINES_LOCK:
        found = _ANALYZERS.get(key)
        if found is not None:
            return found
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry

    memo: dict[tuple[Any, ...], list[Any]] = {}

    class ChatRegistry(RecognizerRegistry):
        """Remembers the recognizers per requested entity set: Presidio filters the whole registry on every call,
        and chatobs asks for a handful of distinct sets, never adding recognizers after the build."""

        def get_recognizers(
            self,
            language: str,
            entities: list[str] | None = None,
            all_fields: bool = False,
            ad_hoc_recognizers: list[Any] | None = None,
        ) -> list[Any]:
            if ad_hoc_recognizers or all_fields or not entities:
                return super().get_recognizers(language, entities, all_fields, ad_hoc_recognizers)
            key = (language, tuple(entities), len(self.recognizers))  # type: ignore[arg-type]  # a list
            found = memo.get(key)
            if found is None:
                found = memo[key] = super().get_recognizers(language, entities, all_fields, ad_hoc_recognizers)
            return list(found)

    nlp = _nlp_engine(cfg)
    registry = ChatRegistry(supported_languages=["en"])
    for rec in _Recognizers.build(cfg):
        registry.add_recognizer(rec)
    if cfg.mode == "ner":
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer

        registry.add_recognizer(SpacyRecognizer(supported_entities=list(NER_ENTITIES)))
    built = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
    with _ENGINES_LOCK:
        return _ANALYZERS.setdefault(key, built)


_ENGINES: dict[str, PiiEngine] = {}  # one per PII configuration (init() with other settings adds one)


def forget_engines() -> None:
    """Drop every built engine (the masking worker rebuilds them after importing the real spaCy)."""
    with _ENGINES_LOCK:
        _ENGINES.clear()
        _ANALYZERS.clear()


def get_engine(cfg: PiiConfig) -> PiiEngine:
    """One engine per configuration per process (building one costs ~1 s; tests and re-inits reuse it)."""
    key = cfg.fingerprint()
    engine = _ENGINES.get(key)
    if engine is None:
        engine = PiiEngine(cfg)  # outside the lock: building the analyzer takes seconds
        with _ENGINES_LOCK:
            engine = _ENGINES.setdefault(key, engine)
    return engine
