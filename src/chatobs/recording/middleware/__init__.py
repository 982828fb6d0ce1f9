"""Pure ASGI and WSGI middleware, and the identity extractors they share."""

from .extract import IdExtractor, RequestInfo

__all__ = ["IdExtractor", "RequestInfo"]
