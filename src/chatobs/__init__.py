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
    "init": "chatobs.runtime.wiring",
    "shutdown": "chatobs.runtime.wiring",
    "get_tracer": "chatobs.runtime.wiring",
    "Settings": "chatobs.config",
    "ConfigError": "chatobs.config",
    "ChatScope": "chatobs.core.chat_scope",
    "current": "chatobs.core.chat_scope",
    "scope": "chatobs.core.chat_scope",
    "wrap": "chatobs.core.chat_scope",
    "inject": "chatobs.core.chat_scope",
    "current_trace_id": "chatobs.core.chat_scope",
    "request_span": "chatobs.core.chat_scope",
    "ChatObsMiddleware": "chatobs.recording.middleware.asgi",
    "ChatObsWSGIMiddleware": "chatobs.recording.middleware.wsgi",
    "ChatObs": "chatobs.recording.middleware.flask",
    "llm_call": "chatobs.recording.instrument.llm",
    "allm_call": "chatobs.recording.instrument.llm",
    "workflow": "chatobs.recording.instrument.decorators",
    "task": "chatobs.recording.instrument.decorators",
    "agent": "chatobs.recording.instrument.decorators",
    "tool": "chatobs.recording.instrument.decorators",
    "instrument_mcp_server": "chatobs.recording.instrument.mcp",
    "on_alert": "chatobs.processing.alerts.rules",
    "feedback": "chatobs.recording.feedback.record",
    "feedback_token": "chatobs.recording.feedback.token:current_token",
    "feedback_asgi_app": "chatobs.recording.feedback.route:asgi_app",
    "feedback_wsgi_app": "chatobs.recording.feedback.route:wsgi_app",
    "prompt": "chatobs.recording.prompts",
    "flush": "chatobs.runtime.control",
    "stats": "chatobs.runtime.control",
    "metrics_asgi_app": "chatobs.processing.metrics.prometheus:asgi_app",
    "metrics_wsgi_app": "chatobs.processing.metrics.prometheus:wsgi_app",
    "register_metric_reader": "chatobs.processing.metrics.stage:register_reader",
    "sample_value": "chatobs.processing.sampling",
    "is_sampled": "chatobs.processing.sampling:keeps",
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
    from .core.chat_scope import ChatScope, current, current_trace_id, inject, request_span, scope, wrap
    from .processing.alerts.rules import on_alert
    from .processing.metrics.prometheus import asgi_app as metrics_asgi_app
    from .processing.metrics.prometheus import wsgi_app as metrics_wsgi_app
    from .processing.metrics.stage import register_reader as register_metric_reader
    from .processing.sampling import keeps as is_sampled
    from .processing.sampling import sample_value
    from .recording.feedback.record import feedback
    from .recording.feedback.route import asgi_app as feedback_asgi_app
    from .recording.feedback.route import wsgi_app as feedback_wsgi_app
    from .recording.feedback.token import current_token as feedback_token
    from .recording.instrument.decorators import agent, task, tool, workflow
    from .recording.instrument.llm import allm_call, llm_call
    from .recording.instrument.mcp import instrument_mcp_server
    from .recording.middleware.asgi import ChatObsMiddleware
    from .recording.middleware.flask import ChatObs
    from .recording.middleware.wsgi import ChatObsWSGIMiddleware
    from .recording.prompts import prompt
    from .runtime.control import flush, stats
    from .runtime.wiring import get_tracer, init, shutdown
