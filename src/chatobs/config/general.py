"""General settings: on/off, the service's identity and debug logging."""

from __future__ import annotations

from pydantic_settings import BaseSettings

from .fields import env_field


class GeneralSettings(BaseSettings):
    """General: on/off, the service's identity and debug logging."""

    enabled: bool = env_field(
        "CHATOBS_ENABLED",
        default=True,
        doc="Master switch. `false` makes every middleware a pass-through and installs nothing.",
        example="false",
    )
    sdk_disabled: bool = env_field(
        "OTEL_SDK_DISABLED",
        default=False,
        doc="The OpenTelemetry spec's kill switch; `true` disables chatobs the same way as `CHATOBS_ENABLED=false`.",
        example="true",
    )
    service_name: str = env_field(
        "OTEL_SERVICE_NAME",
        "CHATOBS_SERVICE_NAME",
        default="chat-app",
        doc="`service.name` of every span.",
        example="support-bot",
    )
    resource_attributes: str = env_field(
        "OTEL_RESOURCE_ATTRIBUTES",
        default="",
        doc="Extra resource attributes, `key=value` pairs separated by commas (OTel spec format).",
        example="deployment.environment=prod,service.version=1.4.2",
    )
    environment: str | None = env_field(
        "CHATOBS_ENVIRONMENT",
        "LANGFUSE_TRACING_ENVIRONMENT",
        default=None,
        doc="Deployment environment, sent as `deployment.environment.name` and to Langfuse/Opik as their environment.",
        example="production",
    )
    release: str | None = env_field(
        "CHATOBS_RELEASE",
        "LANGFUSE_RELEASE",
        default=None,
        doc="Release or version of the app, sent as `service.version` and Langfuse's release.",
        example="2026.11.1",
    )
    debug: bool = env_field(
        "CHATOBS_DEBUG",
        "LANGFUSE_DEBUG",
        default=False,
        doc="Log chatobs's own decisions at DEBUG level (dropped IDs, exporter choice, retries).",
        example="true",
    )

    @property
    def active(self) -> bool:
        return self.enabled and not self.sdk_disabled
