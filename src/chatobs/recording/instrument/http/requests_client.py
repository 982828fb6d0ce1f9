"""``requests`` adapter: ``Session.send`` (``requests.post`` and every session request go through it).

A non-streamed reply has been read when ``send`` returns and is parsed then; for ``stream=True`` the response's
``raw`` is wrapped so each decoded chunk ``iter_content`` / ``iter_lines`` hands the app is fed to the recorder first.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ....core.guard import log_limited
from ..stainless import Call
from . import core

if TYPE_CHECKING:
    from ....config import Settings

__all__ = ["instrument", "uninstrument"]

_MODULE = "requests.sessions"


def instrument(settings: Settings) -> bool:
    return core.install(settings, _MODULE, _patch)


def uninstrument() -> None:
    core.unwrap(_MODULE, ("Session", "send"))


def _begin(request: Any) -> Call | None:
    try:
        if request.method != "POST":  # before parsing the URL: most requests stop here
            return None
        url = urlsplit(request.url)
        kind = core.endpoint(request.method, url.path)
        if kind is None or not isinstance(request.body, (bytes, str)):
            return None
        host, port = url.hostname, url.port
    except Exception:  # noqa: BLE001
        return None
    return core.start(kind, host, port, request.body)


class _RawTap:
    """The urllib3 response, with what is read through it fed to the recorder; everything else is the original's."""

    def __init__(self, raw: Any, exchange: core.Exchange) -> None:
        self._raw = raw
        self._exchange = exchange
        self._plain = not raw.headers.get("content-encoding")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        decoded = kwargs.get("decode_content", args[1] if len(args) > 1 else None) or self._plain
        try:
            for chunk in self._raw.stream(*args, **kwargs):
                if decoded:
                    self._exchange.feed(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            self._exchange.fail(exc)
            raise
        self._exchange.finish()

    def read(self, *args: Any, **kwargs: Any) -> Any:
        data = self._raw.read(*args, **kwargs)
        if self._plain or kwargs.get("decode_content"):
            self._exchange.feed(data)
        return data

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            self._exchange.finish(abandoned=True)  # no-op when read to the end


def _patch(sessions: Any) -> None:
    session = sessions.Session
    if core.wrapped(session, "send"):
        return
    original = session.send

    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        call = _begin(request)
        if call is None:
            return original(self, request, **kwargs)
        token = call.gen.activate()
        try:
            response = original(self, request, **kwargs)
        except BaseException as exc:
            core.start_failed(call, exc)
            raise
        finally:
            call.gen.deactivate(token)
        try:
            exchange = core.Exchange(call, response.status_code, response.headers.get("content-type"))
            if response._content is not False:  # read by send(stream=False)
                exchange.feed(response._content or b"")
                exchange.finish()
            else:
                response.raw = _RawTap(response.raw, exchange)
                weakref.finalize(response, exchange.finish, True).atexit = False
        except Exception as exc:  # noqa: BLE001
            log_limited("http-llm-response", "chatobs: could not read an LLM response: %s", exc)
            call.gen.end()
        return response

    core.wrap(session, "send", send)
