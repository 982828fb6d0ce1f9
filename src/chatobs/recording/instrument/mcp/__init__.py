"""MCP tool calls traced on both sides of the process boundary, with the conversation attached.

- mcp 2.x (``mcp.shared._otel`` exists): the SDK creates the client and server spans and propagates the trace context
  in ``params._meta``; chatobs enriches those spans (``v2``) and creates only the ``MCP connect`` session span.
- mcp 1.x: chatobs creates client and server spans itself following the OTel MCP conventions and injects
  ``traceparent``/``tracestate``/``baggage`` into ``params._meta`` (``v1``).

``chatobs.init()`` calls :func:`instrument`; a server process may call :func:`instrument_mcp_server` instead.
See docs/mcp.md.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, TypeVar

from ....core.guard import guard
from ._common import STATE

if TYPE_CHECKING:
    from ....config import Settings

__all__ = ["flavour", "instrument", "instrument_mcp_server", "uninstrument"]

logger = logging.getLogger("chatobs")
S = TypeVar("S")


def flavour() -> str:
    """``"v2"`` (enrich the SDK's spans), ``"v1"`` (create spans) or ``""`` (mcp missing or not recognised)."""
    from . import v2

    if v2.supported():
        return "v2"
    from . import v1

    return "v1" if v1.supported() else ""


def instrument(settings: Settings) -> bool:
    """Patch the mcp SDK (client and server) -- now if the app has imported it, else right after it does, so that
    ``chatobs.init()`` never imports mcp for an app that does not use it. Idempotent."""
    first = STATE.settings is None and not STATE.pending
    STATE.settings = settings  # re-init after shutdown keeps the patches and takes the new settings
    if first:
        from ..stainless import when_imported

        STATE.pending = True
        when_imported("mcp", _apply)
    return True


def _apply(_module: object = None) -> None:
    STATE.pending = False
    if STATE.flavour or STATE.settings is None:
        return
    kind = flavour()
    if not kind:
        logger.info("chatobs: mcp is installed but neither its 2.x nor its 1.x API was recognised; MCP not traced")
        return
    if kind == "v2":
        from . import v2 as impl
    else:
        from . import v1 as impl  # type: ignore[no-redef]
    try:
        impl.instrument()
    except Exception:
        _undo()
        raise
    STATE.flavour = kind


def uninstrument() -> None:
    if STATE.pending:
        from ..stainless import cancel_when_imported

        cancel_when_imported("mcp")
        STATE.pending = False
    if STATE.flavour == "v2":
        from . import v2

        v2.uninstrument()
    elif STATE.flavour == "v1":
        from . import v1

        v1.uninstrument()
    _undo()
    STATE.settings = None
    STATE.flavour = ""


def _undo() -> None:
    while STATE.undo:
        with guard("mcp uninstrument"):
            STATE.undo.pop()()


def instrument_mcp_server(server: S) -> S:
    """Trace an MCP server (``MCPServer``/``FastMCP`` or a low-level ``Server``) in this process and return it.

    Starts chatobs with the environment's settings if ``chatobs.init()`` has not run. The server's spans then join
    the calling client's trace and carry the caller's conversation and user IDs (from ``params._meta`` baggage).
    Never raises: on failure the server runs untraced and a warning is logged.
    """
    with guard("instrument_mcp_server"):
        from ....runtime.wiring import get_runtime, init

        if get_runtime() is None:
            init()
        if STATE.settings is None:
            runtime = get_runtime()
            if runtime is None:
                return server  # chatobs disabled
            instrument(runtime.settings)
        if not STATE.flavour:
            _apply()  # mcp is imported (the server exists), so patch now
        if STATE.flavour == "v2":
            from . import v2

            v2.install_server(server)
        elif STATE.flavour == "v1":
            from . import v1

            v1.install_server(server)
    return server
