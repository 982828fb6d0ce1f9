"""The one settings object: every chatobs setting, read from the environment.

Each field's first alias is the variable users set; further aliases are the names other tools use for the same thing
(the ``OTEL_*`` spec variables, the Langfuse and Opik SDK variables, the seed documents' ``MCP_*`` names).
``init(**overrides)`` takes the field names as keyword arguments. ``docs/configuration.md`` is generated from the
areas (``python -m chatobs.config > docs/configuration.md``) and a test keeps the two identical.

Validation happens once, in ``load_settings()`` (called by ``chatobs.init``): a bad value raises ``ConfigError`` naming
the variable, the value and what was expected, so nothing can fail later inside a request.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from .agent import AgentSettings
from .dispatch import DispatchSettings
from .feedback import FeedbackSettings
from .fields import field_meta
from .general import GeneralSettings
from .llm import LLMSettings
from .local_store import LocalStoreSettings
from .mcp import MCPSettings
from .metrics_alerts import MetricsAlertsSettings
from .privacy import PrivacySettings
from .request import RequestSettings
from .sampling import SamplingSettings

__all__ = ["AREAS", "ConfigError", "Settings", "env_name", "load_settings"]


class ConfigError(ValueError):
    """A setting has a value chatobs cannot use. The message names the variable, the value and what is expected."""


class Settings(
    AgentSettings,
    FeedbackSettings,
    MetricsAlertsSettings,
    LocalStoreSettings,
    DispatchSettings,
    SamplingSettings,
    PrivacySettings,
    MCPSettings,
    LLMSettings,
    RequestSettings,
    GeneralSettings,
):
    """Every chatobs setting, one base class per area (in ``chatobs/config/<area>.py``). Read the docs for each in
    ``docs/configuration.md``."""

    model_config = SettingsConfigDict(
        populate_by_name=True,
        extra="forbid",
        case_sensitive=False,
        env_ignore_empty=True,
        validate_default=False,
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        if self.otel_traces_sampler_arg is not None and self.otel_traces_sampler in (
            "traceidratio",
            "parentbased_traceidratio",
        ):
            try:
                ratio = float(self.otel_traces_sampler_arg)
            except ValueError:
                raise ValueError("OTEL_TRACES_SAMPLER_ARG: expected a number in [0, 1]") from None
            if not 0.0 <= ratio <= 1.0:
                raise ValueError("OTEL_TRACES_SAMPLER_ARG: expected a number in [0, 1]")
        if self.hash_user_ids and self.hash_secret is None:
            raise ValueError(
                "CHATOBS_HASH_SECRET: required when CHATOBS_HASH_USER_IDS=true (the key of the user-ID hash)"
            )
        if "hash" in self.pii_operator and self.hash_secret is None:
            raise ValueError("CHATOBS_HASH_SECRET: required when CHATOBS_PII_OPERATOR uses `hash`")
        for path_field in ("pricing_file", "pii_recognizers_file", "alerts_file"):
            path = getattr(self, path_field)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{env_name(path_field)}: file {str(path)!r} does not exist")
        if self.alert_webhook_url is not None and not self.alert_webhook_url.get_secret_value().startswith(
            ("http://", "https://")
        ):
            raise ValueError("CHATOBS_ALERT_WEBHOOK_URL: expected an http:// or https:// URL")
        return self


# The areas in the order docs/configuration.md shows them: (title, the base class holding the area's fields).
AREAS: tuple[tuple[str, type[BaseSettings]], ...] = (
    ("General", GeneralSettings),
    ("Request scope and middleware", RequestSettings),
    ("LLM calls", LLMSettings),
    ("MCP", MCPSettings),
    ("Privacy", PrivacySettings),
    ("Sampling", SamplingSettings),
    ("Dispatch", DispatchSettings),
    ("Local store and viewer", LocalStoreSettings),
    ("Metrics and alerts", MetricsAlertsSettings),
    ("User feedback", FeedbackSettings),
    ("Agent", AgentSettings),
)


def env_name(field: str) -> str:
    """The variable a user sets for a field (its first alias)."""
    extra = field_meta(Settings.model_fields.get(field))
    if not extra:
        return field
    return str(extra["env"][0])


def _describe_error(err: ErrorDetails, env_values: dict[str, str], overrides: dict[str, Any]) -> str:
    loc = [str(p) for p in err.get("loc", ())]
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if not loc:
        # Model-level checks already start with the variable name.
        return msg
    field = _ALIAS_TO_FIELD.get(loc[0].upper(), loc[0])
    if field in overrides:
        name, value = f"{field} (init argument)", overrides[field]
    else:
        name = env_name(field)
        info = Settings.model_fields.get(field)
        extra = field_meta(info)
        names = extra["env"] if extra else [field]
        name = next((n for n in names if n.upper() in env_values), name)
        value = env_values.get(name.upper(), err.get("input"))
        if field not in Settings.model_fields:
            return f"{field}: unknown setting"
    info = Settings.model_fields.get(field)
    if info is not None and info.json_schema_extra and info.json_schema_extra.get("secret"):  # type: ignore[union-attr]
        value = "***"
    return f"{name}={value!r}: {msg}"


_ALIAS_TO_FIELD = {
    alias.upper(): name for name, info in Settings.model_fields.items() for alias in field_meta(info).get("env", [])
}


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (plus ``overrides``) and validate everything, or raise one ``ConfigError``."""
    env_values = {k.upper(): v for k, v in os.environ.items()}
    unknown = [k for k in overrides if k not in Settings.model_fields]
    if unknown:
        raise ConfigError(f"chatobs.init(): unknown setting {unknown[0]!r}; see docs/configuration.md for the names")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [_describe_error(e, env_values, overrides) for e in exc.errors()]
        raise ConfigError("invalid chatobs configuration: " + "; ".join(problems)) from None
