"""Which exporters run, and why. Each exporter module exposes ``build(settings) -> SpanExporter``.

Explicit choice (``CHATOBS_EXPORTERS``) fails ``init()`` when an exporter lacks what it needs; automatic choice skips it
with one warning.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

from ..config import ConfigError
from .channel import ExporterSpec

if TYPE_CHECKING:
    from ..config import Settings

logger = logging.getLogger("chatobs")

_MODULES = {
    "otlp": "chatobs.export.otlp",
    "langfuse": "chatobs.export.langfuse",
    "opik": "chatobs.export.opik",
    "local": "chatobs.export.local",
    "console": "chatobs.export.console",
}
# LLM backends get chat traces only (unless CHATOBS_LLM_BACKENDS_ALL_SPANS); OTLP gets everything unless told otherwise.
_LLM_BACKENDS = {"langfuse", "opik"}


def choose(settings: Settings) -> list[tuple[str, str]]:
    """(exporter name, reason) pairs, in the order they will run."""
    if settings.exporters is not None:
        names = [n for n in dict.fromkeys(settings.exporters) if n != "none"]
        return [(n, "named in CHATOBS_EXPORTERS") for n in names]
    chosen: list[tuple[str, str]] = []
    if settings.langfuse_enabled and settings.langfuse_public_key and settings.langfuse_secret_key:
        chosen.append(("langfuse", "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are set"))
    if settings.opik_url or settings.opik_api_key:
        chosen.append(("opik", "OPIK_URL_OVERRIDE or OPIK_API_KEY is set"))
    if settings.otlp_endpoint or settings.otlp_traces_endpoint:
        chosen.append(("otlp", "OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set"))
    if not chosen:
        chosen.append(("local", "no backend configured: the local store is the default"))
    return chosen


def build_exporters(settings: Settings) -> list[ExporterSpec]:
    explicit = settings.exporters is not None
    specs: list[ExporterSpec] = []
    for name, reason in choose(settings):
        try:
            module = importlib.import_module(_MODULES[name])
            exporter = module.build(settings)
        except ConfigError:
            if explicit:
                raise
            logger.warning(
                "chatobs: exporter %r was chosen automatically (%s) but cannot start; skipped",
                name,
                reason,
                exc_info=True,
            )
            continue
        except ImportError as exc:
            msg = f"CHATOBS_EXPORTERS={name}: the {name} exporter needs an optional package ({exc.name}); pip install 'chatobs[{name}]'"
            if explicit:
                raise ConfigError(msg) from None
            logger.warning("chatobs: %s; skipped", msg)
            continue
        chat_only = (name in _LLM_BACKENDS and not settings.llm_backends_all_spans) or (
            name == "otlp" and settings.otlp_chat_only
        )
        accept = _rate_filter(settings, name)
        specs.append(ExporterSpec(name=name, exporter=exporter, chat_only=chat_only, accept=accept, reason=reason))
    return specs


def _rate_filter(settings: Settings, name: str):
    rate = getattr(settings, f"{name}_sample_rate", None)
    if rate is None or rate >= 1.0:
        return None
    from ..processing.sampling import exporter_filter

    return exporter_filter(settings, rate)
