"""``chatobs doctor``: the effective configuration (secrets hidden), the exporters chosen and why, and a live check of
each one by sending a synthetic chat trace through the real exporter."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import random
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..core import semconv

__all__ = ["check_exporter", "check_masking", "effective_config", "run", "synthetic_trace"]

_URL_CREDENTIALS = re.compile(r"(\w+://)([^/@\s]+)@")


@dataclass
class ConfigLine:
    setting: str  # init name
    variable: str  # the variable that set it (or the main one)
    value: str
    source: str  # environment | default
    secret: bool


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    if value is None:
        return ""
    return _URL_CREDENTIALS.sub(r"\1***@", str(value))


def effective_config(settings: Any, *, show_all: bool = False) -> list[ConfigLine]:
    """Every setting that differs from its default (or all), with the variable it came from; secrets as ``***``."""
    from ..config import Settings
    from ..config.fields import field_meta

    env = {k.upper() for k in os.environ}
    lines: list[ConfigLine] = []
    for name, info in Settings.model_fields.items():
        extra = field_meta(info)
        names: list[str] = list(extra.get("env", [name]))
        from_env = next((n for n in names if n.upper() in env), None)
        value = getattr(settings, name)
        default = info.default
        changed = from_env is not None or value != default
        if not (changed or show_all):
            continue
        secret = bool(extra.get("secret"))
        if secret:
            shown = "*** (set)" if value else "(not set)"
        else:
            shown = _show(value)
        lines.append(
            ConfigLine(
                name,
                from_env or names[0],
                shown,
                "environment" if from_env else ("init/default" if changed else "default"),
                secret,
            )
        )
    return lines


def synthetic_trace(settings: Any) -> list[Any]:
    """A two-span chat trace (request + LLM call) marked as a doctor check, ready for any exporter."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

    from .. import __version__
    from ..runtime.wiring import _build_resource

    resource = _build_resource(settings)
    trace_id = random.getrandbits(128) or 1
    root_ctx = SpanContext(
        trace_id, random.getrandbits(64) or 1, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    child_ctx = SpanContext(
        trace_id, random.getrandbits(64) or 1, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    now = time.time_ns()
    scope = InstrumentationScope("chatobs", __version__)
    ids: dict[str, str | bool] = {
        semconv.GEN_AI_CONVERSATION_ID: "chatobs-doctor",
        semconv.USER_ID: "chatobs-doctor",
        "chatobs.tools.doctor": True,
    }
    root = ReadableSpan(
        name="chatobs doctor",
        context=root_ctx,
        parent=None,
        resource=resource,
        kind=SpanKind.SERVER,
        attributes={
            **ids,
            semconv.CHAT_REQUEST: True,
            semconv.ROUTE: "/_chatobs/doctor",
            semconv.INPUT: "synthetic check",
            semconv.OUTPUT: "ok",
        },
        start_time=now - 3_000_000,
        end_time=now,
        instrumentation_scope=scope,
    )
    llm = ReadableSpan(
        name="chat chatobs-doctor",
        context=child_ctx,
        parent=root_ctx,
        resource=resource,
        kind=SpanKind.CLIENT,
        attributes={
            **ids,
            semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
            semconv.GEN_AI_PROVIDER_NAME: "chatobs",
            semconv.GEN_AI_REQUEST_MODEL: "chatobs-doctor",
            semconv.GEN_AI_USAGE_INPUT_TOKENS: 1,
            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 1,
        },
        start_time=now - 2_000_000,
        end_time=now - 1_000_000,
        instrumentation_scope=scope,
    )
    return [llm, root]


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # noqa: BLE001
            pass


@dataclass
class CheckResult:
    exporter: str
    reason: str
    ok: bool
    latency_ms: float | None
    detail: str


def _target(name: str, settings: Any) -> str:
    if name == "otlp":
        if settings.otlp_traces_endpoint:
            return _show(settings.otlp_traces_endpoint)
        base = settings.otlp_endpoint or (
            "http://localhost:4317" if settings.otlp_protocol == "grpc" else "http://localhost:4318"
        )
        return _show(base if settings.otlp_protocol == "grpc" else base.rstrip("/") + "/v1/traces")
    if name == "langfuse":
        return _show(settings.langfuse_base_url or "https://cloud.langfuse.com")
    if name == "opik":
        return _show(settings.opik_url or "Comet cloud")
    if name == "local":
        return str(Path(settings.local_db).resolve())
    return "stdout" if name == "console" else ""


def check_exporter(name: str, reason: str, settings: Any, *, timeout_s: float = 5.0) -> CheckResult:
    """Build the real exporter, send it the synthetic trace, flush, and time it. Never raises."""
    from ..export import _MODULES

    # Bound the check: a dead backend should fail within the timeout, not after the exporter's own retries.
    updates: dict[str, Any] = {"export_timeout_s": timeout_s}
    if settings.otlp_timeout_s is None or settings.otlp_timeout_s > timeout_s:
        updates["otlp_timeout_s"] = timeout_s
    if settings.langfuse_timeout_s is None or settings.langfuse_timeout_s > timeout_s:
        updates["langfuse_timeout_s"] = timeout_s
    settings = settings.model_copy(update=updates)
    recorder = _Recorder()
    watched = [logging.getLogger(n) for n in ("opentelemetry", "chatobs", "langfuse", "opik", "urllib3", "httpx")]
    for lg in watched:
        lg.addHandler(recorder)
    spans = synthetic_trace(settings)
    exporter = None
    started = time.perf_counter()
    try:
        module = importlib.import_module(_MODULES[name])
        exporter = module.build(settings)
        result = exporter.export(spans)
        flushed = exporter.force_flush(int(timeout_s * 1000))
        elapsed = (time.perf_counter() - started) * 1000
        ok = getattr(result, "name", str(result)) == "SUCCESS" and flushed is not False
        if ok:
            detail = (
                f"synthetic trace {format(spans[0].context.trace_id, '032x')} accepted by {_target(name, settings)}"
            )
        else:
            why = _failure_reason(recorder.messages, flushed)
            detail = f"{_target(name, settings)}: {why}"
        if name == "local" and ok:
            _remove_synthetic(exporter, spans)
        return CheckResult(name, reason, ok, round(elapsed, 1), detail)
    except Exception as exc:  # noqa: BLE001 - report it, that is the point of doctor
        elapsed = (time.perf_counter() - started) * 1000
        return CheckResult(name, reason, False, round(elapsed, 1), f"{type(exc).__name__}: {exc}")
    finally:
        for lg in watched:
            lg.removeHandler(recorder)
        if exporter is not None:
            try:
                exporter.shutdown()
            except Exception:  # noqa: BLE001
                pass


_MASKING_SAMPLE = "chatobs doctor: write to ann@example.com"


def check_masking(settings: Any, *, live: bool = True, timeout_s: float = 60.0) -> CheckResult:
    """Whether PII masking can run: Presidio importable and, with ``live``, a sample masked the way the app's pipeline
    would (the worker process or the thread). Never raises."""
    from ..processing.pii.engine import check_config, config_from_settings, masking_unavailable
    from ..processing.redaction import worker_kind

    kind = worker_kind(settings)
    if kind == "none":
        return CheckResult(
            "masking", "CHATOBS_PII=off", True, None, "off: content exported unmasked (secrets still scrubbed)"
        )
    reason = f"CHATOBS_PII={settings.pii_mode}, CHATOBS_MASKING_WORKER={settings.masking_worker}"
    started = time.perf_counter()
    backend: Any
    try:
        cfg = config_from_settings(settings)
        check_config(cfg)
        missing = masking_unavailable(cfg)
        if missing:
            return CheckResult("masking", reason, False, None, missing.removeprefix("chatobs: "))
        if not live:
            return CheckResult("masking", reason, True, None, "presidio-analyzer installed (not started: --no-check)")
        if kind == "process":
            from ..processing.masking.worker import shared_backend

            backend = shared_backend(cfg)  # stopped at exit, like the app's
        else:
            from ..processing.masking.masker import ThreadBackend

            backend = ThreadBackend(cfg)
        out = backend.mask_many([(_MASKING_SAMPLE, None)], timeout_s)
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        if not isinstance(out[0], str) or "ann@example.com" in out[0]:
            return CheckResult(
                "masking", reason, False, elapsed, f"a sample e-mail address was not masked (got {out[0]!r})"
            )
        where = "worker process" if kind == "process" else "background thread"
        return CheckResult("masking", reason, True, elapsed, f"{where} masked a sample: {out[0]!r}")
    except Exception as exc:  # noqa: BLE001 - report it, that is the point of doctor
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        return CheckResult("masking", reason, False, elapsed, f"{type(exc).__name__}: {exc}")


_TRANSIENT = re.compile(r"Transient error (.+?) encountered while exporting", re.S)


def _failure_reason(messages: list[str], flushed: Any) -> str:
    """The most precise thing the exporter logged: the underlying cause first, then its final verdict."""
    if not messages:
        return "flush timed out" if flushed is False else "export failed (the exporter logged no reason)"
    causes = [m.group(1) for msg in messages if (m := _TRANSIENT.search(msg))]
    last = messages[-1]
    return f"{causes[0]} ({last})" if causes and causes[0] not in last else last


def _remove_synthetic(exporter: Any, spans: list[Any]) -> None:
    # The check proved the store is writable; it should not leave a fake conversation in the user's data.
    try:
        exporter.store.delete_trace(format(spans[0].context.trace_id, "032x"))
    except Exception:  # noqa: BLE001
        pass


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError, load_settings
    from ..export import choose

    try:
        settings = load_settings()
    except ConfigError as exc:
        if args.json:
            json.dump({"config_error": str(exc), "ok": False}, sys.stdout, indent=2)
            print()
        else:
            print(f"Configuration: INVALID\n  {exc}")
        return 2
    config = effective_config(settings, show_all=args.all)
    chosen = choose(settings)
    results = [] if args.no_check else [check_exporter(n, r, settings, timeout_s=args.timeout) for n, r in chosen]
    masking = check_masking(settings, live=not args.no_check) if settings.active else None
    ok = all(r.ok for r in results) and (masking is None or masking.ok)
    from ..runtime.agent.report import agent_report

    agent_info, agent_lines = agent_report(settings)
    if args.json:
        json.dump(
            {
                "ok": ok,
                "active": settings.active,
                "agent": agent_info,
                "config": [asdict(c) for c in config],
                "exporters": [{"name": n, "reason": r} for n, r in chosen],
                "checks": [asdict(r) for r in results],
                "masking": asdict(masking) if masking is not None else None,
            },
            sys.stdout,
            indent=2,
        )
        print()
        return 0 if ok else 1
    from .cli.output import table

    title = "every setting" if args.all else "settings that differ from the defaults; --all for every setting"
    print(f"Configuration ({title})")
    if config:
        print(table([[c.variable, c.value, c.source] for c in config], ["VARIABLE", "VALUE", "SOURCE"], max_width=70))
    else:
        print("  all defaults")
    if not settings.active:
        print("\nchatobs is DISABLED (CHATOBS_ENABLED=false or OTEL_SDK_DISABLED=true): nothing is traced or exported")
    print("\nExporters")
    if not chosen:
        print("  none (CHATOBS_EXPORTERS=none): spans are not exported")
    for n, r in chosen:
        print(f"  {n:<9} {r}")
    print(f"\nAgent (CHATOBS_AGENT={settings.agent})")
    for line in agent_lines:
        print(f"  {line}")
    if results:
        print(f"\nLive check (a synthetic 2-span chat trace, timeout {args.timeout:g}s)")
        print(
            table(
                [
                    [
                        r.exporter,
                        "OK" if r.ok else "FAILED",
                        f"{r.latency_ms:.1f} ms" if r.latency_ms is not None else "-",
                        r.detail,
                    ]
                    for r in results
                ],
                ["EXPORTER", "RESULT", "LATENCY", "DETAIL"],
                max_width=100,
                right=(2,),
            )
        )
        for result in results:
            if not result.ok:
                print(f"\n{result.exporter} failed: {result.detail}")
        exporters_ok = all(r.ok for r in results)
        print(
            "\nall exporters OK"
            if exporters_ok
            else "\nsome exporters FAILED: fix the setting named above, then run `chatobs doctor` again"
        )
    if masking is not None:
        print(f"\nMasking ({masking.reason})")
        print(f"  {'OK' if masking.ok else 'FAILED'}: {masking.detail}")
    return 0 if ok else 1
