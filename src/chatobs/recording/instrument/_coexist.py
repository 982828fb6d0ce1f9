"""Living next to other LLM instrumentations: chatobs steps aside so one call never produces two LLM spans.

Policy: **detect and step aside**. When OpenTelemetry's official OpenAI instrumentation, OpenLLMetry, OpenInference or
Logfire already instruments the client making a call, chatobs records no span of its own for that call (and does not
add ``stream_options``); it marks the other library's span ``chatobs.observation.type=llm`` when that span is current,
so chatobs's pipeline still prices it (the cost stage reads any span with GenAI usage attributes), masks it and ships
it to the LLM backends. Checked per call, so an instrumentor enabled after ``chatobs.init()`` is noticed too.
"""

from __future__ import annotations

import contextvars
import sys
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from ...core import semconv

try:  # the key every OTel instrumentation honours ("do not instrument inside this block")
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
except ImportError:  # pragma: no cover - very old API
    _SUPPRESS_INSTRUMENTATION_KEY = otel_context.create_key("suppress_instrumentation")

# Instrumentor modules (loaded only if the app uses them) -> their BaseInstrumentor class name.
_INSTRUMENTORS: dict[str, tuple[tuple[str, str], ...]] = {
    "openai": (
        ("opentelemetry.instrumentation.openai_v2", "OpenAIInstrumentor"),  # OpenTelemetry official
        ("opentelemetry.instrumentation.openai", "OpenAIInstrumentor"),  # OpenLLMetry
        ("openinference.instrumentation.openai", "OpenAIInstrumentor"),  # OpenInference (Arize/Phoenix)
    ),
    "anthropic": (
        ("opentelemetry.instrumentation.anthropic", "AnthropicInstrumentor"),  # OpenLLMetry
        ("openinference.instrumentation.anthropic", "AnthropicInstrumentor"),  # OpenInference
    ),
}

# Tracer names of those libraries' spans (the call's span is current while the SDK runs our hook).
_FOREIGN_SCOPES = (
    "opentelemetry.instrumentation.openai",
    "opentelemetry.instrumentation.anthropic",
    "openinference.instrumentation.openai",
    "openinference.instrumentation.anthropic",
    "logfire.openai",
    "logfire.anthropic",
)


# True while an SDK adapter (or ``llm_call``) handles a call: the plain-HTTP layer then leaves its requests alone, so a
# call made through the openai/anthropic SDK (or LiteLLM and LangChain, which use them) is one span, never two.
SDK_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("chatobs_sdk_call", default=False)

# Tracer names that also record a call over plain HTTP (the Anthropic SDK's own spans, when chatobs does not patch it).
_HTTP_FOREIGN_SCOPES = (*_FOREIGN_SCOPES, "com.anthropic")


def http_step_aside() -> bool:
    """True when an HTTP request to an LLM endpoint is already recorded by a layer above it (an SDK adapter,
    ``llm_call``, another instrumentation's current LLM span) or instrumentation is suppressed."""
    if SDK_CALL.get() or suppressed():
        return True
    span = trace.get_current_span()
    scope = getattr(span, "instrumentation_scope", None)
    return scope is not None and span.is_recording() and scope.name.startswith(_HTTP_FOREIGN_SCOPES)


def suppressed() -> bool:
    return bool(otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY))


def _instrumentor_active(provider: str) -> bool:
    for module_name, class_name in _INSTRUMENTORS.get(provider, ()):
        module = sys.modules.get(module_name)
        if module is None:
            continue
        cls = getattr(module, class_name, None)
        instance = getattr(cls, "_instance", None)  # BaseInstrumentor is a singleton
        if instance is not None and getattr(instance, "_is_instrumented_by_opentelemetry", False):
            return True
    return False


def step_aside(provider: str, client: Any, *, widely_covered: bool = True) -> bool:
    """True when another instrumentation records this call (or instrumentation is suppressed).

    ``widely_covered``: the endpoint is one every known instrumentor records (chat completions, embeddings, Anthropic
    messages), so an active instrumentor is enough evidence even when its span is not the current one. For newer
    endpoints (the Responses API) only a current foreign span counts, so chatobs does not drop calls nobody records.
    """
    if suppressed():
        return True
    span = trace.get_current_span()
    scope = getattr(span, "instrumentation_scope", None)
    foreign_span = scope is not None and span.is_recording() and scope.name.startswith(_FOREIGN_SCOPES)
    if foreign_span:
        span.set_attribute(semconv.OBSERVATION_TYPE, "llm")
        return True
    if getattr(client, "_is_instrumented_by_logfire", False):
        return True
    return widely_covered and _instrumentor_active(provider)
