"""Flask extension: ``ChatObs(app)`` or ``ext = ChatObs(); ext.init_app(app)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .extract import IdExtractor
from .wsgi import ROUTE_ENVIRON_KEY, ChatObsWSGIMiddleware


class ChatObs:
    def __init__(self, app: Any = None, *, extractors: Sequence[IdExtractor] = ()) -> None:
        self.extractors = tuple(extractors)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any) -> None:
        if isinstance(app.wsgi_app, ChatObsWSGIMiddleware):
            return  # already wrapped: never trace a request twice
        app.wsgi_app = ChatObsWSGIMiddleware(app.wsgi_app, extractors=self.extractors)
        app.extensions["chatobs"] = self
        app.before_request(_record_route)


def _record_route() -> None:
    from flask import request

    rule = request.url_rule
    if rule is not None:
        request.environ[ROUTE_ENVIRON_KEY] = rule.rule
