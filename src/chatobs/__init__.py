"""chatobs: production-grade LLM observability for chat apps, with one middleware.

Public API (everything importable from ``chatobs``; loaded lazily so ``import chatobs`` stays fast and imports no
optional package)::

    chatobs.init(**settings) / chatobs.shutdown()
    chatobs.ChatObsMiddleware          # ASGI (FastAPI, Starlette)
    chatobs.ChatObsWSGIMiddleware      # WSGI;  chatobs.ChatObs(app) for Flask
    chatobs.current() / chatobs.scope(...) / chatobs.wrap(fn) / chatobs.inject(headers) / chatobs.request_span()
    chatobs.llm_call(...) / chatobs.allm_call(...)
    @chatobs.workflow / @chatobs.task / @chatobs.agent / @chatobs.tool
    chatobs.instrument_mcp_server(server)
    chatobs.on_alert(fn)               # alerts to a Python callback
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "init": "chatobs.runtime",
    "shutdown": "chatobs.runtime",
    "get_tracer": "chatobs.runtime",
    "Settings": "chatobs.config",
    "ConfigError": "chatobs.config",
    "ChatScope": "chatobs.context",
    "current": "chatobs.context",
    "scope": "chatobs.context",
    "wrap": "chatobs.context",
    "inject": "chatobs.context",
    "current_trace_id": "chatobs.context",
    "request_span": "chatobs.context",
    "ChatObsMiddleware": "chatobs.middleware.asgi",
    "ChatObsWSGIMiddleware": "chatobs.middleware.wsgi",
    "ChatObs": "chatobs.middleware.flask",
    "llm_call": "chatobs.instrument.llm",
    "allm_call": "chatobs.instrument.llm",
    "workflow": "chatobs.instrument.decorators",
    "task": "chatobs.instrument.decorators",
    "agent": "chatobs.instrument.decorators",
    "tool": "chatobs.instrument.decorators",
    "instrument_mcp_server": "chatobs.instrument.mcp",
    "on_alert": "chatobs.pipeline.alerts",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'chatobs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from .config import ConfigError, Settings
    from .context import ChatScope, current, current_trace_id, inject, request_span, scope, wrap
    from .instrument.decorators import agent, task, tool, workflow
    from .instrument.llm import allm_call, llm_call
    from .instrument.mcp import instrument_mcp_server
    from .middleware.asgi import ChatObsMiddleware
    from .middleware.flask import ChatObs
    from .middleware.wsgi import ChatObsWSGIMiddleware
    from .pipeline.alerts import on_alert
    from .runtime import get_tracer, init, shutdown
