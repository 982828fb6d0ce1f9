"""``chatobs.init()`` and ``chatobs.shutdown()``: build the pipeline once and attach it to the tracer provider.

If the app already installed an SDK ``TracerProvider`` chatobs adds to it; otherwise it installs its own. Either way it
adds exactly one permanent "switchboard" processor (and, on its own provider, a delegating sampler) per provider, so
``init()`` after ``shutdown()`` -- or in a forked worker -- never double-registers anything: it only re-points them.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler, SamplingResult

from .. import __version__
from ..config import Settings, load_settings
from ..export import build_exporters, choose
from ..export.channel import Dispatcher, ExportChannel, ExporterSpec
from ..processing.pipeline import PipelineProcessor, ScopeProcessor, Stage

logger = logging.getLogger("chatobs")

__all__ = ["Runtime", "get_runtime", "get_tracer", "init", "settings_or_none", "shutdown"]


@dataclass
class Runtime:
    settings: Settings
    provider: TracerProvider | None  # None in the agent, which has no tracer of its own
    owns_provider: bool
    sampler: Sampler
    scope_processor: ScopeProcessor
    pipeline: Any  # PipelineProcessor in process and in the agent; the hand-off to the agent otherwise
    exporters: list[ExporterSpec]
    channels: list[ExportChannel]
    stages: list[Stage]
    instrumented: list[str] = field(default_factory=list)

    def force_flush(self, timeout_s: float = 5.0) -> bool:
        return self.pipeline.force_flush(int(timeout_s * 1000))


_lock = threading.RLock()
_runtime: Runtime | None = None
_settings: Settings | None = None  # also kept when chatobs is disabled, so middleware knows to pass through
_atexit_registered = False


class _Switchboard(SpanProcessor):
    """The one processor chatobs ever adds to a provider; forwards to whatever the current runtime is."""

    def __init__(self) -> None:
        self.targets: tuple[SpanProcessor, ...] = ()

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        for t in self.targets:
            t.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for t in self.targets:
            t.on_end(span)

    def shutdown(self) -> None:
        # The app shutting down its provider stops chatobs too (flushing what it holds).
        if self.targets:
            shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(t.force_flush(timeout_millis) for t in self.targets)


class _SwitchSampler(Sampler):
    """Sampler of a chatobs-owned provider; delegates to the current runtime's sampler."""

    def __init__(self) -> None:
        self.target: Sampler = ParentBased(ALWAYS_ON)

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return self.target.should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return f"chatobs({self.target.get_description()})"


def _build_resource(settings: Settings) -> Resource:
    attrs: dict[str, Any] = {}
    for part in settings.resource_attributes.split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            attrs[key.strip()] = value.strip()
    attrs["service.name"] = settings.service_name
    if settings.release:
        attrs.setdefault("service.version", settings.release)
    if settings.environment:
        attrs.setdefault("deployment.environment.name", settings.environment)
    attrs["telemetry.distro.name"] = "chatobs"
    attrs["telemetry.distro.version"] = __version__
    return Resource.create(attrs)


def _build_stages(settings: Settings) -> list[Stage]:
    from ..processing import content, cost, redaction, sampling
    from ..processing.alerts import rules as alerts
    from ..processing.metrics import recorder as metrics

    # Order matters: content first (LLM content snapshots -> GenAI attributes, as every later stage expects them); cost
    # before metrics and tail sampling (cost rules); masking last, just before fan-out.
    built = [
        content.build(settings),
        cost.build(settings),
        metrics.build(settings),
        alerts.build(settings),
        sampling.build(settings),
        redaction.build(settings),
    ]
    return [s for s in built if s is not None]


def agent_mode(settings: Settings, embedded: bool) -> str:
    """``inprocess`` when exporters were passed to ``init()`` (tests, embedding), else ``CHATOBS_AGENT``."""
    return "inprocess" if embedded else settings.agent


def build_pipeline(
    settings: Settings, extra: Sequence[SpanExporter] = ()
) -> tuple[list[ExporterSpec], list[Stage], list[ExportChannel], PipelineProcessor]:
    """The stages, the exporters behind their channels, and the processor feeding them: the whole pipeline, for this
    process (``CHATOBS_AGENT=inprocess``) or for the agent."""
    specs = build_exporters(settings)
    specs += [ExporterSpec(name=f"extra{i}", exporter=e, reason="passed to init()") for i, e in enumerate(extra)]
    stages = _build_stages(settings)
    channels = [
        ExportChannel(
            spec,
            queue_size=settings.export_queue_size,
            batch_size=settings.export_batch_size,
            interval_s=settings.export_interval_ms / 1000,
            max_retry_s=settings.export_max_retry_s,
        )
        for spec in specs
    ]
    pipeline = PipelineProcessor(
        stages,
        Dispatcher(channels),
        max_queue_size=settings.max_queue_size,
        batch_size=settings.export_batch_size,
        interval_s=settings.export_interval_ms / 1000,
    )
    return specs, stages, channels, pipeline


def _handoff(settings: Settings, overrides: dict[str, Any], resource: Resource, mode: str) -> SpanProcessor:
    """The app side of the agent: a hand-off to this configuration's agent (``auto``) or the user-run one."""
    from functools import partial

    from ..config import env_name
    from ..core import launch, sockdir
    from ..recording.handoff import HandoffProcessor

    try:
        directory = sockdir.checked_dir(settings.agent_dir)
        path = sockdir.socket_path(directory, sockdir.settings_key(settings) if mode == "auto" else None)
    except (sockdir.AgentDirError, OSError) as exc:
        # Never the app's problem: it runs, its spans are dropped and counted, and the log says what to fix.
        logger.warning("chatobs: %s; spans are dropped (counted) until this is fixed", exc)
        return HandoffProcessor(None, resource, refused=str(exc), queue_size=settings.agent_queue_size)
    start = None
    if mode == "auto":
        env = sockdir.agent_environment(settings, overrides, env_name)
        start = partial(launch.ensure_agent, path, env, idle_exit_s=settings.agent_idle_exit_s)
    return HandoffProcessor(
        path, resource, start=start, queue_size=settings.agent_queue_size, batch_size=settings.export_batch_size
    )


def start_headless(settings: Settings) -> Runtime:
    """The agent's runtime: the pipeline without a tracer provider (spans arrive from app processes), registered so
    the stages that look up the running runtime (metrics gauges, sampling) find it."""
    global _runtime, _settings
    with _lock:
        specs, stages, channels, pipeline = build_pipeline(settings)
        runtime = Runtime(
            settings=settings,
            provider=None,
            owns_provider=True,
            sampler=ParentBased(ALWAYS_ON),
            scope_processor=ScopeProcessor(),
            pipeline=pipeline,
            exporters=specs,
            channels=channels,
            stages=stages,
        )
        _runtime, _settings = runtime, settings
        return runtime


def init(_span_exporters: Sequence[SpanExporter] = (), **overrides: Any) -> Runtime | None:
    """Read the settings (environment plus ``overrides``), validate them, and start chatobs.

    Raises ``ConfigError`` on a bad setting. Returns ``None`` when chatobs is disabled. Calling it again while running
    returns the running instance (call ``shutdown()`` first to change settings).
    ``_span_exporters`` adds extra exporters receiving every span (tests, embedding).
    """
    global _runtime, _settings, _atexit_registered
    with _lock:
        if _runtime is not None:
            if overrides or _span_exporters:
                logger.warning("chatobs.init(): already running; call chatobs.shutdown() first to change settings")
            return _runtime
        settings = load_settings(**overrides)
        _settings = settings
        if not settings.active:
            logger.info("chatobs: disabled (CHATOBS_ENABLED=false or OTEL_SDK_DISABLED=true)")
            return None
        if settings.debug:
            logging.getLogger("chatobs").setLevel(logging.DEBUG)

        from ..processing import sampling

        mode = agent_mode(settings, bool(_span_exporters))
        if mode == "inprocess":
            specs, stages, channels, pipeline = build_pipeline(settings, _span_exporters)
        else:
            stages, channels = [], []
            pipeline = None
            # What the agent for this configuration runs (same settings, same choice), for banners and doctor; the
            # user-run agent (`connect`) decides for itself.
            specs = (
                [ExporterSpec(name=n, exporter=None, reason=f"{r}; in the agent") for n, r in choose(settings)]  # type: ignore[arg-type]  # a name and reason only: the exporter lives in the agent
                if mode == "auto"
                else []
            )
        scope_processor = ScopeProcessor()
        from ..core.chat_scope import set_user_id_transform
        from ..core.hashing import hash_key_hex, user_id_hasher

        set_user_id_transform(user_id_hasher(settings) if hash_key_hex(settings) is not None else None)
        sampler = sampling.build_sampler(settings)

        provider = trace.get_tracer_provider()
        owns = False
        if not isinstance(provider, TracerProvider):
            from ..recording.framework_spans import ChatTracerProvider

            provider = ChatTracerProvider(resource=_build_resource(settings), sampler=_SwitchSampler())
            provider._chatobs_owned = True  # type: ignore[attr-defined]
            trace.set_tracer_provider(provider)
            owns = True
        elif getattr(provider, "_chatobs_owned", False):
            owns = True
        switch: _Switchboard | None = getattr(provider, "_chatobs_switch", None)
        if switch is None:
            switch = _Switchboard()
            provider.add_span_processor(switch)
            provider._chatobs_switch = switch  # type: ignore[attr-defined]
        if pipeline is None:
            target: SpanProcessor = _handoff(settings, overrides, provider.resource, mode)
            if any(s.name == "opik" for s in specs):
                # The Opik exporter (in the agent) needs each trace's time stamped on outgoing calls, which only this
                # process can do: what building the exporter switches on in process.
                from ..recording.middleware.tracecontext import stamp_trace_time

                stamp_trace_time(True)
        else:
            target = pipeline
        switch.targets = (scope_processor, target)
        if owns and isinstance(provider.sampler, _SwitchSampler):
            provider.sampler.target = sampler

        from ..recording.middleware.tracecontext import install_strict_propagator

        install_strict_propagator()
        runtime = Runtime(
            settings=settings,
            provider=provider,
            owns_provider=owns,
            sampler=sampler,
            scope_processor=scope_processor,
            pipeline=target,
            exporters=specs,
            channels=channels,
            stages=stages,
        )
        _runtime = runtime
        from ..recording import framework_spans, light_spans

        framework_spans.configure(settings.framework_spans)
        light = settings.record_unsampled == "light" and sampling.unsampled_needed(settings)
        light_spans.configure(target.on_end if light else None, provider.resource)
        from ..recording.instrument import instrument_all

        runtime.instrumented = instrument_all(settings)
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
        logger.info(
            "chatobs %s: exporters %s; instrumented %s",
            __version__,
            ", ".join(f"{s.name} ({s.reason})" for s in specs)
            or ("none" if mode == "inprocess" else "chosen by the user-run agent"),
            ", ".join(runtime.instrumented) or "nothing",
        )
        return runtime


def shutdown(timeout_s: float | None = None) -> None:
    """Flush every exporter (in parallel, within ``CHATOBS_SHUTDOWN_TIMEOUT`` in total) and stop. Safe to call twice."""
    global _runtime, _settings
    with _lock:
        runtime = _runtime
        if runtime is None:
            _settings = None
            return
        _runtime = None
        _settings = None
    if runtime.provider is not None:
        switch = getattr(runtime.provider, "_chatobs_switch", None)
        if switch is not None:
            switch.targets = ()
        from ..recording import framework_spans, light_spans

        framework_spans.configure(True)
        light_spans.configure(None, None)
        if runtime.owns_provider and isinstance(runtime.provider.sampler, _SwitchSampler):
            runtime.provider.sampler.target = ParentBased(ALWAYS_ON)
        from ..recording.instrument import uninstrument_all

        uninstrument_all()
        if not isinstance(runtime.pipeline, PipelineProcessor):
            from ..recording.middleware.tracecontext import stamp_trace_time

            stamp_trace_time(False)  # in process, the Opik exporter's shutdown does this
    started = time.monotonic()
    try:
        runtime.pipeline.shutdown(timeout_s if timeout_s is not None else runtime.settings.shutdown_timeout_s)
    except Exception as exc:  # noqa: BLE001
        logger.warning("chatobs: shutdown failed: %s", exc)
    logger.debug("chatobs: shut down in %.3fs", time.monotonic() - started)


def get_runtime() -> Runtime | None:
    return _runtime


def settings_or_none() -> Settings | None:
    return _settings


_tracer_cache: tuple[object, trace.Tracer] | None = None


def get_tracer() -> trace.Tracer:
    """chatobs's tracer on the current global provider (cached: creating a tracer costs more than a span)."""
    global _tracer_cache
    provider = trace.get_tracer_provider()
    cached = _tracer_cache
    if cached is not None and cached[0] is provider:
        return cached[1]
    tracer = provider.get_tracer("chatobs", __version__)
    _tracer_cache = (provider, tracer)
    return tracer
