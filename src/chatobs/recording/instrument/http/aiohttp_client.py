"""``aiohttp`` adapter: ``ClientSession._request`` (what ``session.post``/``request``/``get`` all await).

The reply is read where aiohttp's parser hands the body to the response's ``StreamReader`` (``feed_data``, with
content decoding already done), whatever way the app then reads it (``json()``, ``async for line in resp.content``,
``iter_chunked``...): the reader's class is switched to a subclass with the same slots whose ``feed_data`` /
``feed_eof`` / ``set_exception`` also feed the recorder. The recorder rides in the reader's end-of-body callbacks
(aiohttp's ``on_eof``), so nothing is kept beside the reader. The span ends at the end of the body, on a connection
error, or when the response is garbage-collected unread.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from ....core.guard import log_limited
from ..stainless import Call
from . import core

if TYPE_CHECKING:
    from ....config import Settings

__all__ = ["instrument", "uninstrument"]

_MODULE = "aiohttp.client"
_tap_class: Any = None


def instrument(settings: Settings) -> bool:
    return core.install(settings, _MODULE, _patch)


def uninstrument() -> None:
    core.unwrap(_MODULE, ("ClientSession", "_request"))


class _OnEof:
    """The end-of-body callback that carries the recorder."""

    __slots__ = ("exchange",)

    def __init__(self, exchange: core.Exchange) -> None:
        self.exchange = exchange

    def __call__(self) -> None:
        self.exchange.finish()


def _exchange_of(reader: Any) -> core.Exchange | None:
    for callback in reader._eof_callbacks:
        if type(callback) is _OnEof:
            return callback.exchange
    return None


def _tapped_reader(streams: Any) -> Any:
    class _TapReader(streams.StreamReader):
        __slots__ = ()  # same layout as StreamReader, so an instance's class can be switched

        def feed_data(self, data: bytes, *args: Any, **kwargs: Any) -> Any:
            exchange = _exchange_of(self)
            if exchange is not None:
                exchange.feed(data)
            return super().feed_data(data, *args, **kwargs)

        def set_exception(self, exc: BaseException, *args: Any, **kwargs: Any) -> None:
            exchange = _exchange_of(self)  # before aiohttp drops the end-of-body callbacks
            if exchange is not None:
                exchange.fail(exc)
            super().set_exception(exc, *args, **kwargs)

    return _TapReader


def _begin(session: Any, method: str, str_or_url: Any, kwargs: dict[str, Any]) -> Call | None:
    try:
        if method.upper() != "POST":
            return None
        url = session._build_url(str_or_url)
        kind = core.endpoint(method, url.path)
        if kind is None:
            return None
        body = kwargs.get("json")
        if body is None:
            body = kwargs.get("data")
            if not isinstance(body, (bytes, str)):
                return None
        host, port = url.host, url.explicit_port
    except Exception:  # noqa: BLE001
        return None
    return core.start(kind, host, port, body)


def _watch(call: Call, response: Any) -> None:
    try:
        exchange = core.Exchange(call, response.status, response.headers.get("content-type"))
        reader = response.content
        if type(reader) is not _tap_class.__base__:
            exchange.finish()  # a reader chatobs does not know: the span ends without the reply
            return
        for chunk in list(reader._buffer):  # what arrived with the headers, before the switch
            exchange.feed(chunk)
        if reader.is_eof():
            exchange.finish()
            return
        reader.__class__ = _tap_class
        reader.on_eof(_OnEof(exchange))
        weakref.finalize(response, exchange.finish, True).atexit = False
    except Exception as exc:  # noqa: BLE001
        log_limited("http-llm-response", "chatobs: could not read an LLM response: %s", exc)
        call.gen.end()


def _patch(client: Any) -> None:
    global _tap_class
    session = client.ClientSession
    if core.wrapped(session, "_request"):
        return
    import aiohttp.streams  # imported by aiohttp.client already

    _tap_class = _tapped_reader(aiohttp.streams)
    original = session._request

    async def _request(self: Any, method: str, str_or_url: Any, **kwargs: Any) -> Any:
        call = _begin(self, method, str_or_url, kwargs)
        if call is None:
            return await original(self, method, str_or_url, **kwargs)
        token = call.gen.activate()
        try:
            response = await original(self, method, str_or_url, **kwargs)
        except BaseException as exc:
            core.start_failed(call, exc)
            raise
        finally:
            call.gen.deactivate(token)
        _watch(call, response)
        return response

    core.wrap(session, "_request", _request)
