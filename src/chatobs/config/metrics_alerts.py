"""Metrics and alerts settings: OpenTelemetry metrics, the Prometheus route and alert rules and sinks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings

from .fields import env_field


class MetricsAlertsSettings(BaseSettings):
    """Metrics and alerts: openTelemetry metrics, the Prometheus route and alert rules and sinks."""

    metrics: bool = env_field(
        "CHATOBS_METRICS",
        default=True,
        doc="Record OTel metrics (tokens, cost, latency, tool health, pipeline health).",
        example="false",
    )
    prometheus_port: int | None = env_field(
        "CHATOBS_PROMETHEUS_PORT",
        default=None,
        ge=1,
        le=65535,
        doc="Serve a Prometheus scrape endpoint on 127.0.0.1 at this port.",
        example="9464",
    )
    metrics_user_attribute: bool = env_field(
        "CHATOBS_METRICS_USER_ATTRIBUTE",
        default=False,
        doc="Add `user.id` to metric attributes (only for small deployments: unbounded cardinality).",
        example="true",
    )
    alerts_file: Path | None = env_field(
        "CHATOBS_ALERTS_FILE",
        default=None,
        doc="YAML file of alert rules (see docs/metrics.md).",
        example="./alerts.yaml",
    )
    alert_webhook_url: SecretStr | None = env_field(
        "CHATOBS_ALERT_WEBHOOK_URL",
        default=None,
        secret=True,
        doc="Alerts are POSTed as JSON to this URL.",
        example="http://127.0.0.1:9000/hooks/chatobs",
    )
    alert_cooldown_s: float = env_field(
        "CHATOBS_ALERT_COOLDOWN_S",
        default=300.0,
        ge=0,
        doc="The same alert (rule and subject) is sent at most once per cooldown.",
        example="60",
    )
    metrics_export_interval_ms: int = env_field(
        "OTEL_METRIC_EXPORT_INTERVAL",
        "CHATOBS_METRICS_EXPORT_INTERVAL_MS",
        default=60000,
        ge=100,
        doc="Milliseconds between OTLP metric pushes (the OTel spec variable).",
        example="15000",
    )
    alerts: bool = env_field(
        "CHATOBS_ALERTS",
        default=True,
        doc="Evaluate alert rules in process (slow tool, error rate, budget, spike, latency).",
        example="false",
    )
    alert_window_s: float = env_field(
        "CHATOBS_ALERT_WINDOW_S",
        default=300.0,
        gt=0,
        doc="Window of the error-rate, latency and spike rules defined by settings (a YAML rule sets its own).",
        example="600",
    )
    alert_error_rate: float | None = env_field(
        "CHATOBS_ALERT_ERROR_RATE",
        default=None,
        gt=0,
        le=1,
        doc="Alert when the LLM or the tool error rate over the window exceeds this fraction (at least 10 calls).",
        example="0.2",
    )
    alert_budget_usd: float | None = env_field(
        "CHATOBS_ALERT_BUDGET_USD",
        default=None,
        gt=0,
        doc="Alert when the LLM cost of one conversation, user or tenant (`CHATOBS_ALERT_BUDGET_BY`) over `CHATOBS_ALERT_BUDGET_WINDOW_S` exceeds this.",
        example="2.50",
    )
    alert_budget_by: Literal["conversation", "user", "tenant"] = env_field(
        "CHATOBS_ALERT_BUDGET_BY",
        default="conversation",
        doc="Whose cost `CHATOBS_ALERT_BUDGET_USD` limits: `conversation`, `user` or `tenant`.",
        example="tenant",
    )
    alert_budget_window_s: float = env_field(
        "CHATOBS_ALERT_BUDGET_WINDOW_S",
        default=86400.0,
        gt=0,
        doc="Window of the budget rule, seconds.",
        example="3600",
    )
    alert_spike_factor: float | None = env_field(
        "CHATOBS_ALERT_SPIKE_FACTOR",
        default=None,
        gt=1,
        doc="Alert when cost or tokens in the current window exceed this multiple of the average of the previous 12 windows.",
        example="3",
    )
    alert_latency_p95_ms: float | None = env_field(
        "CHATOBS_ALERT_LATENCY_P95_MS",
        default=None,
        gt=0,
        doc="Alert when the 95th percentile LLM call duration over the window exceeds this.",
        example="8000",
    )
    alert_webhook_max_per_minute: int = env_field(
        "CHATOBS_ALERT_WEBHOOK_MAX_PER_MINUTE",
        default=20,
        ge=1,
        doc="Most webhook POSTs per minute; further alerts are dropped and counted (the log still has them).",
        example="60",
    )
    alert_webhook_timeout_s: float = env_field(
        "CHATOBS_ALERT_WEBHOOK_TIMEOUT_S",
        default=5.0,
        gt=0,
        doc="Timeout of one webhook POST; a failed POST is retried three times with backoff.",
        example="2",
    )
    alert_negative_feedback: float | None = env_field(
        "CHATOBS_ALERT_NEGATIVE_FEEDBACK",
        default=None,
        gt=0,
        le=1,
        doc="Alert when the share of negative user feedback (thumbs down, a number <= 0, a negative category) over `CHATOBS_ALERT_NEGATIVE_FEEDBACK_WINDOW_S` exceeds this fraction (see docs/feedback.md).",
        example="0.3",
    )
    alert_negative_feedback_window_s: float = env_field(
        "CHATOBS_ALERT_NEGATIVE_FEEDBACK_WINDOW_S",
        default=3600.0,
        gt=0,
        doc="Window of the negative-feedback alert: ratings given in the last this many seconds.",
        example="86400",
    )
    alert_negative_feedback_min_count: int = env_field(
        "CHATOBS_ALERT_NEGATIVE_FEEDBACK_MIN_COUNT",
        default=10,
        ge=1,
        doc="Fewest ratings in the window before the negative-feedback alert can fire.",
        example="20",
    )

    @field_validator(
        "alert_budget_by",
        mode="before",
    )
    @classmethod
    def _lower_metrics_alerts(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value
