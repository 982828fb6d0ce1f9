"""``httpx`` adapter: ``Client.send`` / ``AsyncClient.send`` (every request of both clients goes through them).

A non-streamed reply has been read when ``send`` returns and is parsed then; a streamed one (``client.stream(...)``,
``send(stream=True)``) has its byte stream replaced by a pass-through that feeds each chunk to the recorder before the
app gets it. The span ends when the stream is read to the end, fails, or is closed (or garbage-collected) early.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from ....core.guard import log_limited
from ..stainless import Call
from . import core

if TYPE_CHECKING:
    from ....config import Settings

__all__ = ["instrument", "uninstrument"]

_MODULE = "httpx"


def instrument(settings: Settings) -> bool:
    return core.install(settings, _MODULE, _patch)


def uninstrument() -> None:
    core.unwrap(_MODULE, ("Client", "send"), ("AsyncClient", "send"))


def _begin(request: Any) -> Call | None:
    try:
        kind = core.endpoint(request.method, request.url.path)
        if kind is None:
            return None
        body = request.content
    except Exception:  # noqa: BLE001 - e.g. a streamed request body (httpx.RequestNotRead): not read, not recorded
        return None
    return core.start(kind, request.url.host, request.url.port, body)


def _decoder(response: Any) -> Any:
    """A fresh decoder for the response's Content-Encoding (the stream holds raw bytes); None for identity."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return None
    from httpx._decoders import SUPPORTED_DECODERS  # httpx's own decoders; no public factory

    return SUPPORTED_DECODERS[encoding]()


def _exchange(call: Call, response: Any) -> tuple[core.Exchange, Any] | None:
    try:
        exchange = core.Exchange(call, response.status_code, response.headers.get("content-type"))
        if hasattr(response, "_content"):  # read by send(stream=False)
            exchange.feed(response.content)
            exchange.finish()
            return None
        try:
            decoder = _decoder(response)
        except Exception:  # noqa: BLE001 - an encoding chatobs cannot decode: the span gets no reply
            exchange.finish()
            return None
        return exchange, decoder
    except Exception as exc:  # noqa: BLE001
        log_limited("http-llm-response", "chatobs: could not read an LLM response: %s", exc)
        call.gen.end()
        return None


def _feed(exchange: core.Exchange, decoder: Any, chunk: bytes) -> None:
    try:
        exchange.feed(decoder.decode(chunk) if decoder is not None else chunk)
    except Exception:  # noqa: BLE001
        exchange.finish()


def _tap(call: Call, response: Any, tap_class: Any) -> None:
    tap = _exchange(call, response)
    if tap is not None:
        response.stream = tap_class(response.stream, *tap)
        weakref.finalize(response, tap[0].finish, True).atexit = False


def _patch(httpx: Any) -> None:
    if core.wrapped(httpx.Client, "send"):
        return
    original_sync, original_async = httpx.Client.send, httpx.AsyncClient.send

    class _SyncTap(httpx.SyncByteStream):
        def __init__(self, inner: Any, exchange: core.Exchange, decoder: Any) -> None:
            self.inner, self.exchange, self.decoder = inner, exchange, decoder

        def __iter__(self) -> Iterator[bytes]:
            try:
                for chunk in self.inner:
                    _feed(self.exchange, self.decoder, chunk)
                    yield chunk
            except GeneratorExit:
                raise
            except BaseException as exc:
                self.exchange.fail(exc)
                raise
            self.exchange.finish()

        def close(self) -> None:
            try:
                self.inner.close()
            finally:
                self.exchange.finish(abandoned=True)  # no-op when the stream was read to the end

    class _AsyncTap(httpx.AsyncByteStream):
        def __init__(self, inner: Any, exchange: core.Exchange, decoder: Any) -> None:
            self.inner, self.exchange, self.decoder = inner, exchange, decoder

        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for chunk in self.inner:
                    _feed(self.exchange, self.decoder, chunk)
                    yield chunk
            except GeneratorExit:
                raise
            except BaseException as exc:
                self.exchange.fail(exc)
                raise
            self.exchange.finish()

        async def aclose(self) -> None:
            try:
                await self.inner.aclose()
            finally:
                self.exchange.finish(abandoned=True)

    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        call = _begin(request)
        if call is None:
            return original_sync(self, request, *args, **kwargs)
        token = call.gen.activate()
        try:
            response = original_sync(self, request, *args, **kwargs)
        except BaseException as exc:
            core.start_failed(call, exc)
            raise
        finally:
            call.gen.deactivate(token)
        _tap(call, response, _SyncTap)
        return response

    async def asend(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        call = _begin(request)
        if call is None:
            return await original_async(self, request, *args, **kwargs)
        token = call.gen.activate()
        try:
            response = await original_async(self, request, *args, **kwargs)
        except BaseException as exc:
            core.start_failed(call, exc)
            raise
        finally:
            call.gen.deactivate(token)
        _tap(call, response, _AsyncTap)
        return response

    core.wrap(httpx.Client, "send", send)
    core.wrap(httpx.AsyncClient, "send", asend)
