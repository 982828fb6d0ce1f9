"""Which requests are traced: excluded paths (never), chat routes (traced), the rest (counted, not stored).

Both the middleware and the head sampler ask these, so a request is judged the same whichever server span comes
first: chatobs's own, FastAPI's native telemetry's, or OpenTelemetry's ASGI/WSGI instrumentation's (the sampler reads
the method and path from the attributes those spans are started with).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ChatRoutes", "PathFilter", "chat_routes_for", "parse_route", "server_span_request", "set_framework_routes"]


class PathFilter:
    """``CHATOBS_EXCLUDE_PATHS``: exact paths, or prefixes written with a trailing ``*``."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.exact = frozenset(p for p in patterns if not p.endswith("*"))
        self.prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))

    def excluded(self, path: str) -> bool:
        return path in self.exact or (bool(self.prefixes) and path.startswith(self.prefixes))


def parse_route(entry: str) -> tuple[str, str]:
    """One ``CHATOBS_CHAT_ROUTES`` entry, ``"METHOD PATH"`` or ``"PATH"`` (any method), as (method or ``*``, path).
    Raises ``ValueError`` saying what is expected."""
    parts = entry.split()
    if len(parts) == 1:
        method, path = "*", parts[0]
    elif len(parts) == 2:
        method, path = parts[0].upper(), parts[1]
    else:
        raise ValueError(f"route {entry!r}: expected 'METHOD /path', '/path' or '/prefix*'")
    if method != "*" and not method.isalpha():
        raise ValueError(f"route {entry!r}: expected an HTTP method such as POST, or *")
    if path != "*" and not path.startswith("/"):
        raise ValueError(f"route {entry!r}: the path must start with / (or be * for every path)")
    return method, path


class ChatRoutes:
    """``CHATOBS_CHAT_ROUTES``: the requests that are chat turns. ``None`` patterns (``CHATOBS_TRACE_ALL_ROUTES``):
    every request is one. ``defaulted``: the user left the setting at its default, so a framework integration that
    knows its own chat endpoints (:func:`set_framework_routes`) decides instead."""

    def __init__(self, entries: Sequence[str] | None, *, defaulted: bool = False) -> None:
        self.all = entries is None
        self.defaulted = defaulted and not self.all
        by_method: dict[str, list[str]] = {}
        for method, path in (parse_route(e) for e in entries or ()):
            by_method.setdefault(method, []).append(path)  # a bare "*" is the empty prefix: every path
        self._rules = {method: PathFilter(paths) for method, paths in by_method.items()}

    def is_chat(self, method: str, path: str) -> bool:
        if self.all:
            return True
        if self.defaulted and _framework_routes is not None:
            return _framework_routes.is_chat(method, path)
        for key in (method.upper(), "*"):
            rule = self._rules.get(key)
            if rule is not None and rule.excluded(path):
                return True
        return False


# Set by a framework integration when the framework is imported (Open WebUI: its completion endpoints). Module-level
# because the middleware and the head sampler are built before the framework is, and must both follow it.
_framework_routes: ChatRoutes | None = None


def set_framework_routes(entries: Sequence[str] | None) -> None:
    """The chat routes of the framework this process serves, used wherever ``CHATOBS_CHAT_ROUTES`` was not set
    (``None``: back to the setting's default)."""
    global _framework_routes
    _framework_routes = ChatRoutes(entries) if entries is not None else None


def chat_routes_for(settings: Any) -> ChatRoutes | None:
    """The chat routes a settings object asks for (``None`` with ``CHATOBS_TRACE_ALL_ROUTES``): one rule for the
    middleware and the sampler. A setting given in the environment or to ``init()`` is in ``model_fields_set``."""
    if settings.trace_all_routes:
        return None
    return ChatRoutes(settings.chat_routes, defaulted="chat_routes" not in settings.model_fields_set)


def server_span_request(attributes: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """(method, path) of a SERVER span from its start attributes, in the stable HTTP conventions (chatobs, FastAPI)
    or the old ones OpenTelemetry's ASGI/WSGI instrumentation still emits by default."""
    if not attributes:
        return None, None
    path = attributes.get("url.path")
    if path is None:
        target = attributes.get("http.target")
        if isinstance(target, str):
            path = target.split("?", 1)[0]
    method = (
        attributes.get("http.request.method_original")
        or attributes.get("http.request.method")
        or attributes.get("http.method")
    )
    return (method if isinstance(method, str) else None), (path if isinstance(path, str) else None)
