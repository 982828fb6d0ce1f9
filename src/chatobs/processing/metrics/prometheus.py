"""The Prometheus exposition of chatobs's metrics, as an ASGI or WSGI route to mount in the app."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...core.guard import log_limited

if TYPE_CHECKING:
    pass
from .stage import current

# --- Prometheus text for a route mounted in the app -----------------------------------------------------------------
_NOT_RUNNING = b"# chatobs metrics are not running (chatobs.init() not called, or CHATOBS_METRICS=false)\n"


def render_prometheus() -> tuple[int, bytes, str]:
    """(status, body, content type) of the Prometheus exposition of chatobs's metrics."""
    rec = current()
    if rec is None:
        # With an agent the metrics live there, counting every process: ask it (the hand-off knows its socket).
        from ...recording.installed import runtime_or_none

        remote = getattr(getattr(runtime_or_none(), "pipeline", None), "prometheus_text", None)
        reply = remote() if remote is not None else None
        if reply is not None:
            return reply
    if rec is None or rec.prometheus_registry is None:
        return 503, _NOT_RUNNING, "text/plain; charset=utf-8"
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return 200, generate_latest(rec.prometheus_registry), CONTENT_TYPE_LATEST


async def asgi_app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    """ASGI app serving chatobs's metrics for Prometheus, e.g. ``app.mount("/metrics", asgi_app)``."""
    if scope.get("type") != "http":
        return
    try:
        status, body, ctype = render_prometheus()
    except Exception as exc:  # noqa: BLE001
        log_limited("metrics-route", "chatobs: metrics route failed: %s", exc)
        status, body, ctype = 500, b"# chatobs metrics failed\n", "text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """WSGI app serving chatobs's metrics for Prometheus (Flask: mount with ``DispatcherMiddleware``)."""
    try:
        status, body, ctype = render_prometheus()
    except Exception as exc:  # noqa: BLE001
        log_limited("metrics-route", "chatobs: metrics route failed: %s", exc)
        status, body, ctype = 500, b"# chatobs metrics failed\n", "text/plain; charset=utf-8"
    reason = {200: "OK", 500: "Internal Server Error", 503: "Service Unavailable"}[status]
    start_response(f"{status} {reason}", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]
