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
    chatobs.feedback(trace_id, value, name=..., comment=..., user_id=...)   # a user's verdict on a turn
    chatobs.feedback_token()           # the current turn's feedback token (also sent as X-Feedback-Token)
    chatobs.feedback_asgi_app / chatobs.feedback_wsgi_app   # POST {prefix}/feedback for browsers
    chatobs.prompt(name, version=None, variables=None)      # context manager / decorator: LLM spans name the prompt
    chatobs.flush(timeout_s=5.0)       # export everything received so far (benchmarks, batch jobs, tests)
    chatobs.stats()                    # the pipeline's counters (received, dropped, exported, ...) as a dict
    chatobs.metrics_asgi_app / chatobs.metrics_wsgi_app   # the Prometheus scrape route to mount in the app
    chatobs.register_metric_reader(reader)                # an extra OTel MetricReader from the next init() on
    chatobs.sample_value(key) / chatobs.is_sampled(key, rate)   # the sampling decision, the same in every process
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> "module" (same attribute name) or "module:attribute"
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
    "feedback": "chatobs.rating.record",
    "feedback_token": "chatobs.rating.token:current_token",
    "feedback_asgi_app": "chatobs.rating.route:asgi_app",
    "feedback_wsgi_app": "chatobs.rating.route:wsgi_app",
    "prompt": "chatobs.prompts",
    "flush": "chatobs.control",
    "stats": "chatobs.control",
    "metrics_asgi_app": "chatobs.pipeline.metrics:asgi_app",
    "metrics_wsgi_app": "chatobs.pipeline.metrics:wsgi_app",
    "register_metric_reader": "chatobs.pipeline.metrics:register_reader",
    "sample_value": "chatobs.pipeline.sampling",
    "is_sampled": "chatobs.pipeline.sampling:keeps",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'chatobs' has no attribute {name!r}")
    module, _, attribute = target.partition(":")
    value = getattr(importlib.import_module(module), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from .config import ConfigError, Settings
    from .context import ChatScope, current, current_trace_id, inject, request_span, scope, wrap
    from .control import flush, stats
    from .instrument.decorators import agent, task, tool, workflow
    from .instrument.llm import allm_call, llm_call
    from .instrument.mcp import instrument_mcp_server
    from .middleware.asgi import ChatObsMiddleware
    from .middleware.flask import ChatObs
    from .middleware.wsgi import ChatObsWSGIMiddleware
    from .pipeline.alerts import on_alert
    from .pipeline.metrics import asgi_app as metrics_asgi_app
    from .pipeline.metrics import register_reader as register_metric_reader
    from .pipeline.metrics import wsgi_app as metrics_wsgi_app
    from .pipeline.sampling import keeps as is_sampled
    from .pipeline.sampling import sample_value
    from .prompts import prompt
    from .rating.record import feedback
    from .rating.route import asgi_app as feedback_asgi_app
    from .rating.route import wsgi_app as feedback_wsgi_app
    from .rating.token import current_token as feedback_token
    from .runtime import get_tracer, init, shutdown
