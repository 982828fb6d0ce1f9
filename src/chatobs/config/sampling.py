"""Sampling settings: head sampling, tail rules (errors, slow, cost) and per-exporter rates."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator
from pydantic_settings import BaseSettings

from .fields import env_field


class SamplingSettings(BaseSettings):
    """Sampling: head sampling, tail rules (errors, slow, cost) and per-exporter rates."""

    sample_rate: float = env_field(
        "CHATOBS_SAMPLE_RATE",
        default=1.0,
        ge=0.0,
        le=1.0,
        doc="Fraction of conversations kept, in [0, 1].",
        example="0.25",
    )
    sample_by: Literal["conversation", "trace"] = env_field(
        "CHATOBS_SAMPLE_BY",
        default="conversation",
        doc="Key of the sampling decision: every turn of a `conversation` is kept or dropped together; `trace` decides per turn.",
        example="trace",
    )
    sample_ignore_remote_parent: bool = env_field(
        "CHATOBS_SAMPLE_IGNORE_REMOTE_PARENT",
        default=False,
        doc="Ignore the sampled flag of an incoming `traceparent` (public endpoints).",
        example="true",
    )
    otel_traces_sampler: str | None = env_field(
        "OTEL_TRACES_SAMPLER",
        default=None,
        doc="OTel spec sampler: `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio`.",
        example="parentbased_traceidratio",
    )
    otel_traces_sampler_arg: str | None = env_field(
        "OTEL_TRACES_SAMPLER_ARG",
        default=None,
        doc="Argument of `OTEL_TRACES_SAMPLER` (the ratio for the ratio samplers).",
        example="0.1",
    )
    keep_errors: bool = env_field(
        "CHATOBS_KEEP_ERRORS",
        default=True,
        doc="Keep a trace that head sampling dropped when any of its spans failed.",
        example="false",
    )
    keep_slow_ms: float | None = env_field(
        "CHATOBS_KEEP_SLOW_MS",
        default=None,
        gt=0,
        doc="Keep a trace that head sampling dropped when the request took longer than this.",
        example="10000",
    )
    keep_cost_usd: float | None = env_field(
        "CHATOBS_KEEP_COST_USD",
        default=None,
        ge=0,
        doc="Keep a trace that head sampling dropped when its LLM cost exceeds this.",
        example="0.50",
    )
    record_unsampled: Literal["light", "full"] = env_field(
        "CHATOBS_RECORD_UNSAMPLED",
        default="light",
        doc="What is recorded of a trace head sampling dropped, for metrics and the tail rules: `light` = chatobs's own spans (request, LLM, MCP, decorators) with their attributes but without message or tool content, and no other instrumentation's spans (almost free on the request path; a trace a tail rule keeps has no content); `full` = every span with content until the request ends (a kept trace is complete; costs what a sampled trace costs).",
        example="full",
    )
    tail_max_traces: int = env_field(
        "CHATOBS_TAIL_MAX_TRACES",
        default=10000,
        ge=1,
        doc="Open traces held for the tail rules; past it the oldest is decided early (counted).",
        example="2000",
    )
    tail_max_spans_per_trace: int = env_field(
        "CHATOBS_TAIL_MAX_SPANS_PER_TRACE",
        default=512,
        ge=1,
        doc="Spans held per open trace; past it the trace is decided early (counted).",
        example="128",
    )
    tail_max_bytes: int = env_field(
        "CHATOBS_TAIL_MAX_BYTES",
        default=64 * 1024 * 1024,
        ge=1024,
        doc="Approximate bytes held for the tail rules across all open traces.",
        example="16777216",
    )
    tail_max_age_s: float = env_field(
        "CHATOBS_TAIL_MAX_AGE_S",
        default=300.0,
        gt=0,
        doc="Longest an open trace is held for the tail rules; past it the trace is decided on what arrived (counted).",
        example="60",
    )
    langfuse_sample_rate: float | None = env_field(
        "LANGFUSE_SAMPLE_RATE",
        "CHATOBS_LANGFUSE_SAMPLE_RATE",
        default=None,
        ge=0.0,
        le=1.0,
        doc="Fraction of conversations sent to Langfuse; the same hash is compared with every rate, so they nest (effective rate: the smaller of this and `CHATOBS_SAMPLE_RATE`). Traces kept by a tail rule are always sent.",
        example="0.1",
    )
    opik_sample_rate: float | None = env_field(
        "CHATOBS_OPIK_SAMPLE_RATE",
        default=None,
        ge=0.0,
        le=1.0,
        doc="Fraction of conversations sent to Opik (nested like `LANGFUSE_SAMPLE_RATE`).",
        example="0.1",
    )
    otlp_sample_rate: float | None = env_field(
        "CHATOBS_OTLP_SAMPLE_RATE",
        default=None,
        ge=0.0,
        le=1.0,
        doc="Fraction of conversations sent over OTLP (nested like `LANGFUSE_SAMPLE_RATE`).",
        example="0.5",
    )
    local_sample_rate: float | None = env_field(
        "CHATOBS_LOCAL_SAMPLE_RATE",
        default=None,
        ge=0.0,
        le=1.0,
        doc="Fraction of conversations written to the local store (nested like `LANGFUSE_SAMPLE_RATE`).",
        example="1.0",
    )

    @field_validator(
        "sample_by",
        mode="before",
    )
    @classmethod
    def _lower_sampling(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("otel_traces_sampler")
    @classmethod
    def _known_sampler(cls, value: str | None) -> str | None:
        if value is None:
            return None
        known = (
            "always_on",
            "always_off",
            "traceidratio",
            "parentbased_always_on",
            "parentbased_always_off",
            "parentbased_traceidratio",
        )
        v = value.strip().lower()
        if v not in known:
            raise ValueError(f"expected one of {', '.join(known)}")
        return v
