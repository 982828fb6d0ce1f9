"""What both middlewares share: which paths are traced, and who a request is about.

Identity comes from, in order of precedence: headers (then, for the user, the claim ``CHATOBS_USER_JWT_CLAIM`` of an
unverified bearer JWT), the top-level fields of a JSON body, then user callables
(``extractors``) -- each source only fills what the earlier ones left empty. Every ID is validated (non-empty,
printable, at most ``CHATOBS_MAX_ID_LENGTH`` characters); a bad one is dropped with a debug log, never an error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...core.guard import log_limited
from ...core.routes import ChatRoutes, PathFilter, chat_routes_for

logger = logging.getLogger("chatobs")

ID_FIELDS = ("conversation_id", "user_id", "tenant_id", "message_id", "parent_message_id")

# Never recorded, whatever the capture allow-list says.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"})


@dataclass
class RequestInfo:
    """What an extractor callable sees. ``raw`` is the ASGI scope or the WSGI environ."""

    method: str
    path: str
    headers: Mapping[str, Sequence[str]]  # lower-case names
    body: Mapping[str, Any] | None = None  # the parsed JSON body, when it was an object within the size limit
    raw: Mapping[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


# A callable returning IDs for a request, e.g. ``lambda req: {"user_id": req.raw["user"].username}``.
IdExtractor = Callable[[RequestInfo], Mapping[str, Any] | None]


def valid_id(value: Any, max_length: int, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        logger.debug("chatobs: ignored %s of type %s", what, type(value).__name__)
        return None
    text = str(value).strip()
    if not text or len(text) > max_length or not text.isprintable():
        logger.debug("chatobs: ignored invalid %s (length %d)", what, len(text))
        return None
    return text


class IdentityReader:
    """Reads the five IDs from a request, configured once from the settings."""

    def __init__(self, settings: Any, extractors: Sequence[IdExtractor] = ()) -> None:
        self.max_length: int = settings.max_id_length
        self.headers = {
            "conversation_id": settings.conversation_header.lower(),
            "user_id": settings.user_header.lower(),
            "tenant_id": settings.tenant_header.lower(),
            "message_id": settings.message_header.lower(),
            "parent_message_id": settings.parent_message_header.lower(),
        }
        self.fields = {
            "conversation_id": tuple(settings.conversation_fields),
            "user_id": tuple(settings.user_fields),
            "tenant_id": tuple(settings.tenant_fields),
            "message_id": tuple(settings.message_fields),
            "parent_message_id": tuple(settings.parent_message_fields),
        }
        self.extractors = tuple(extractors)
        self.jwt_claim: str | None = getattr(settings, "user_jwt_claim", None)

    def from_headers(self, headers: Mapping[str, Sequence[str]]) -> dict[str, str]:
        ids: dict[str, str] = {}
        for name, header in self.headers.items():
            values = headers.get(header)
            if values:
                v = valid_id(values[0], self.max_length, name)
                if v:
                    ids[name] = v
        if self.jwt_claim and "user_id" not in ids:
            from .jwt_user import claim_from_headers

            v = valid_id(claim_from_headers(headers, self.jwt_claim), self.max_length, "user_id")
            if v:
                ids["user_id"] = v
        return ids

    def missing(self, ids: Mapping[str, str]) -> bool:
        return len(ids) < len(ID_FIELDS)

    def from_body(self, body: Mapping[str, Any] | None, ids: dict[str, str]) -> None:
        if not body:
            return
        for name, names in self.fields.items():
            if name in ids:
                continue
            for f in names:
                if f in body:
                    v = valid_id(body[f], self.max_length, name)
                    if v:
                        ids[name] = v
                        break

    def from_extractors(self, info: RequestInfo, ids: dict[str, str]) -> None:
        for extractor in self.extractors:
            try:
                found = extractor(info) or {}
            except Exception as exc:  # noqa: BLE001 - user code must not break the request either
                log_limited("id-extractor", "chatobs: ID extractor %r failed: %s", extractor, exc)
                continue
            for name, value in found.items():
                if name in ID_FIELDS and name not in ids:
                    v = valid_id(value, self.max_length, name)
                    if v:
                        ids[name] = v


def parse_json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or ``None`` (not JSON, not an object, not UTF-8): never an error."""
    if not body:
        return None
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def is_json_content_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def captured_headers(headers: Mapping[str, Sequence[str]], allow: Sequence[str]) -> dict[str, list[str]]:
    from ...core import semconv

    out: dict[str, list[str]] = {}
    for name in allow:
        key = name.lower()
        if key in SECRET_HEADERS:
            continue
        values = headers.get(key)
        if values:
            out[semconv.HTTP_REQUEST_HEADER_PREFIX + key] = list(values)
    return out


class MiddlewareBase:
    """What both middlewares set up from the settings when they are built (dataclass fields: ``extractors``,
    ``settings``). ``init()`` runs here if the app has not called it, so a bad setting fails at start-up, never
    inside a request."""

    extractors: Sequence[IdExtractor]
    settings: Any

    def _configure(self) -> None:
        if self.settings is None:
            import chatobs  # the public init(), as the app would call it: the runtime sits above this layer

            from ..installed import settings_or_none

            chatobs.init()
            self.settings = settings_or_none()
        s = self.settings
        self._active = bool(s is not None and s.active)
        if not self._active:
            return
        self._paths = PathFilter(s.exclude_paths)
        self._routes = chat_routes_for(s) or ChatRoutes(None)
        self._ids = IdentityReader(s, self.extractors)
        self._max_body: int = s.max_body_bytes
        self._trace_header_name: str = s.trace_id_header
        self._token_header_name: str = s.feedback_token_header
