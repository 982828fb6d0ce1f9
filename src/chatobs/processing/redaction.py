"""Redaction stage: the last stage before fan-out, so no exporter (the local store included) sees unmasked content.

Per span:
- content attributes (``semconv.CONTENT_ATTRIBUTES``, other instrumentations' prompt/completion attributes,
  ``CHATOBS_REDACT_ATTRIBUTES``), every span-event attribute (exception messages and stack traces) and the status
  description: secrets scrubbed, then Presidio PII masking (JSON field by field, so messages stay valid JSON);
- attributes whose name says secret (``authorization``, ``api_key``, ``*_token``...): value replaced by ``<SECRET>``;
- HTTP header attributes not in ``CHATOBS_CAPTURE_HEADERS``: removed;
- every other string attribute: secrets scrubbed (cheap regex);
- ``user.id`` replaced by its keyed hash when ``CHATOBS_HASH_USER_IDS`` is on;
- then every string cut to ``CHATOBS_MAX_ATTRIBUTE_LENGTH``.

Fail closed: when masking errs, times out or its queue is full, the span's content is replaced by a marker naming the
reason (``chatobs.redaction.failed``) and counted in ``STATS.events["redaction_failed:<reason>"]``; the rest of the
span (timings, tokens, cost) still goes out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Status

from ..core import semconv
from ..core.guard import log_limited
from ..core.hashing import hash_key_hex, hash_user_id
from ..core.spans import attributes_of, with_changes
from ..core.stats import STATS, PipelineStats
from . import secrets
from .masking.masker import Masker, MaskingFailed, ThreadBackend, failed_marker
from .pii.engine import PiiConfig, check_config, config_from_settings, masking_unavailable

if TYPE_CHECKING:
    from ..config import Settings
    from .masking.worker import ProcessBackend

__all__ = ["RedactionStage", "build", "hash_user_id", "worker_kind"]

logger = logging.getLogger("chatobs")

_HEADER_PREFIXES = (semconv.HTTP_REQUEST_HEADER_PREFIX, semconv.HTTP_RESPONSE_HEADER_PREFIX)
_DROP, _SECRET, _USER, _CONTENT, _OTHER = range(5)  # attribute kinds, see RedactionStage._kind


def worker_kind(settings: Settings) -> str:
    """Where Presidio runs. ``auto`` picks the worker process. Measured in benchmarks/bench_privacy.py: on a thread,
    masking adds ~8 ms of GIL-holding CPU per chat request to the app process (2.4 -> 10.5 ms/request), far past the
    5% budget whenever the app is busy; in the worker the app pays ~0.5 ms (JSON walk, secrets, cache, pipe)."""
    if settings.pii_mode == "off":
        return "none"
    return "thread" if settings.masking_worker == "thread" else "process"


class RedactionStage:
    name = "redaction"
    pass_on_error = False  # a batch that cannot be masked must not be exported

    def __init__(self, settings: Settings, masker: Masker, *, stats: PipelineStats = STATS) -> None:
        self.masker = masker
        self.stats = stats
        content = set(semconv.CONTENT_ATTRIBUTES) | set(semconv.FOREIGN_CONTENT_ATTRIBUTES)
        prefixes = list(semconv.FOREIGN_CONTENT_PREFIXES)
        for name in settings.redact_attributes:
            if name.endswith("*"):
                prefixes.append(name[:-1])
            else:
                content.add(name)
        self._content = frozenset(content)
        self._content_prefixes = tuple(prefixes)
        self._headers = frozenset(h.strip().lower().replace("-", "_") for h in settings.capture_headers)
        self._user_key = hash_key_hex(settings)
        self._kinds: dict[str, int] = {}  # attribute name -> what to do; bounded: 4,096 names (then decided each time)

    # --- classification -------------------------------------------------------------------------------------------
    def _is_content(self, key: str) -> bool:
        if key in self._content:
            return True
        return key.startswith(self._content_prefixes) and key not in semconv.NON_CONTENT_ATTRIBUTES

    def _kind(self, key: str) -> int:
        """What ``_redact`` does with an attribute: every span repeats the same few names, so it is decided once."""
        kind = self._kinds.get(key)
        if kind is None:
            if key.startswith(_HEADER_PREFIXES) and not self._header_allowed(key):
                kind = _DROP
            elif secrets.is_secret_name(key):
                kind = _SECRET
            elif key == semconv.USER_ID and self._user_key is not None:
                kind = _USER
            else:
                kind = _CONTENT if self._is_content(key) else _OTHER
            if len(self._kinds) < 4096:
                self._kinds[key] = kind
        return kind

    def _header_allowed(self, key: str) -> bool:
        name = key.split(".")[-1].lower().replace("-", "_")
        return name in self._headers

    # --- stage ----------------------------------------------------------------------------------------------------
    def process(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        masker = self.masker
        masker.start_batch()
        items = [attributes_of(span).items() for span in spans]  # the SDK's own mapping iterates in Python
        for span, attributes in zip(spans, items, strict=False):
            for key, value in attributes:
                if self._kind(key) == _CONTENT:
                    masker.collect(value)
            for event in span.events:
                for key, value in (event.attributes or {}).items():
                    if key not in semconv.EVENT_NON_CONTENT_ATTRIBUTES:
                        masker.collect(value)
            if span.status.description:
                masker.collect(span.status.description)
        batch_failure: str | None = None
        try:
            masker.resolve()
        except MaskingFailed as exc:
            batch_failure = exc.reason
            log_limited(
                f"redaction-{exc.reason}",
                "chatobs: PII masking failed (%s); content of the affected spans is dropped, not exported unmasked",
                exc,
            )
        except Exception as exc:  # noqa: BLE001
            batch_failure = "error"
            log_limited("redaction-error", "chatobs: PII masking failed: %s: %s", type(exc).__name__, exc)
        out = []
        for span, attributes in zip(spans, items, strict=False):
            try:
                out.append(self._redact(span, attributes))
            except MaskingFailed as exc:
                out.append(self._fail_closed(span, batch_failure or exc.reason))
            except Exception as exc:  # noqa: BLE001
                log_limited("redaction-span", "chatobs: masking a span failed: %s: %s", type(exc).__name__, exc)
                out.append(self._fail_closed(span, "error"))
        masker.end_batch()
        return out

    def _redact(self, span: ReadableSpan, attributes: Iterable[tuple[str, Any]]) -> ReadableSpan:
        masker = self.masker
        attrs: dict[str, Any] = {}
        redacted: list[str] = []
        truncated: list[str] = []
        for key, value in attributes:
            kind = self._kind(key)
            if kind == _DROP:
                redacted.append(key)
                continue  # headers are never exported unless allow-listed
            if kind == _SECRET and value not in ("", None):
                attrs[key] = secrets.SECRET_TOKEN
                redacted.append(key)
                continue
            if kind == _USER and isinstance(value, str):
                attrs[key] = hash_user_id(self._user_key or "", value)
                continue
            if not isinstance(value, (str, list, tuple)):
                attrs[key] = value  # numbers and booleans: nothing to mask, nothing to cut
                continue
            new, changed, cut = masker.mask(value, content=kind == _CONTENT)
            attrs[key] = new
            if changed:
                redacted.append(key)
            if cut:
                truncated.append(key)
        events = []
        for event in span.events:
            eattrs: dict[str, Any] = {}
            for key, value in (event.attributes or {}).items():
                if key in semconv.EVENT_NON_CONTENT_ATTRIBUTES:
                    eattrs[key] = value
                    continue
                new, changed, cut = masker.mask(value, content=True)
                eattrs[key] = new
                if changed:
                    redacted.append(f"{event.name}:{key}")
                if cut:
                    truncated.append(f"{event.name}:{key}")
            events.append(Event(event.name, eattrs, event.timestamp))
        status = span.status
        if status.description:
            new, changed, _ = masker.mask(status.description, content=True)
            if changed or new != status.description:
                status = Status(status.status_code, new)
        if redacted:
            attrs[semconv.REDACTED] = tuple(sorted(set(redacted)))
        if truncated:
            attrs[semconv.TRUNCATED] = tuple(sorted(set(truncated)))
        return with_changes(span, attributes=attrs, events=events, status=status)

    def _fail_closed(self, span: ReadableSpan, reason: str) -> ReadableSpan:
        """Keep the span's shape and numbers; every content-bearing value becomes a marker naming the reason."""
        self.stats.count(f"redaction_failed:{reason}")
        marker = failed_marker(reason)
        attrs: dict[str, Any] = {}
        for key, value in (span.attributes or {}).items():
            if key.startswith(_HEADER_PREFIXES) and not self._header_allowed(key):
                continue
            if self._is_content(key) or secrets.is_secret_name(key):
                attrs[key] = marker
            elif key == semconv.USER_ID and self._user_key is not None and isinstance(value, str):
                attrs[key] = hash_user_id(self._user_key, value)
            elif isinstance(value, str):
                attrs[key] = secrets.scrub(value)
            else:
                attrs[key] = value
        attrs[semconv.REDACTION_FAILED] = reason
        events = [
            Event(
                e.name,
                {
                    k: (v if k in semconv.EVENT_NON_CONTENT_ATTRIBUTES else marker)
                    for k, v in (e.attributes or {}).items()
                },
                e.timestamp,
            )
            for e in span.events
        ]
        status = Status(span.status.status_code, marker) if span.status.description else span.status
        return with_changes(span, attributes=attrs, events=events, status=status)

    def flush(self) -> list[ReadableSpan]:
        return []

    def shutdown(self) -> None:
        self.masker.close()


def build(settings: Settings) -> RedactionStage | None:
    """Always a stage (secrets, headers and truncation apply even with ``CHATOBS_PII=off``). Raises ``ConfigError``
    on a bad privacy setting, e.g. NER mode without its spaCy model."""
    cfg: PiiConfig | None = None
    backend: ProcessBackend | ThreadBackend | None = None
    # Compile the secret rule set now, at startup: built lazily it would hold the GIL ~0.3 s under the first request.
    secrets.warm()
    kind = worker_kind(settings)
    if kind != "none":
        cfg = config_from_settings(settings)
        check_config(cfg)
        missing = masking_unavailable(cfg)
        if missing:
            logger.warning(missing)  # at init, once: otherwise content would vanish with no word why
        if kind == "process":
            from .masking.worker import shared_backend

            backend = shared_backend(cfg)
        else:
            backend = ThreadBackend(cfg)
    masker = Masker(cfg, backend, max_length=settings.max_attribute_length, timeout_s=settings.masking_timeout_s)
    return RedactionStage(settings, masker)
