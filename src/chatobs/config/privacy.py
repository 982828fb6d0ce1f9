"""Privacy settings: PII masking (Presidio), attribute redaction, user-ID hashing and the masking worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings

from .fields import CSV, env_field, split_csv


class PrivacySettings(BaseSettings):
    """Privacy: pII masking (Presidio), attribute redaction, user-ID hashing and the masking worker."""

    pii: Literal["patterns", "ner", "off"] = env_field(
        "CHATOBS_PII",
        default="patterns",
        doc="PII masking engine: `patterns` (Presidio pattern recognizers, no model), `ner` (adds a spaCy model for names and places), `off`.",
        example="ner",
    )
    sanitize_pii: bool = env_field(
        "MCP_TRACE_SANITIZE_PII",
        default=True,
        doc="Seed-compatible switch: `false` is the same as `CHATOBS_PII=off`. Secrets are scrubbed either way.",
        example="false",
    )
    pii_entities: CSV = env_field(
        "CHATOBS_PII_ENTITIES",
        default=[],
        doc="Presidio entity types to mask; empty means chatobs's default set.",
        example="EMAIL_ADDRESS,PHONE_NUMBER,CREDIT_CARD",
    )
    pii_operator: str = env_field(
        "CHATOBS_PII_OPERATOR",
        default="replace",
        doc="How found PII is masked: `replace` (`<EMAIL_ADDRESS>`), `mask`, `redact` or `hash`; per entity as `ENTITY:op` pairs, e.g. `replace,EMAIL_ADDRESS:hash`.",
        example="replace,EMAIL_ADDRESS:hash",
    )
    pii_score_threshold: float = env_field(
        "CHATOBS_PII_SCORE_THRESHOLD",
        default=0.4,
        ge=0.0,
        le=1.0,
        doc="Minimum Presidio score for a finding to be masked.",
        example="0.5",
    )
    pii_allow_list: CSV = env_field(
        "CHATOBS_PII_ALLOW_LIST",
        default=[],
        doc="Values never masked (e.g. your support e-mail address).",
        example="support@example.com,ACME",
    )
    pii_recognizers_file: Path | None = env_field(
        "CHATOBS_PII_RECOGNIZERS_FILE",
        default=None,
        doc="YAML file of extra pattern recognizers (name, entity, regex, score, context words).",
        example="./recognizers.yaml",
    )
    pii_ner_model: str = env_field(
        "CHATOBS_PII_NER_MODEL",
        default="en_core_web_sm",
        doc="spaCy model used when `CHATOBS_PII=ner`.",
        example="en_core_web_md",
    )
    redact_attributes: CSV = env_field(
        "CHATOBS_REDACT_ATTRIBUTES",
        default=[],
        doc="Extra span attribute names whose values are masked like message content.",
        example="app.search.query,app.ticket.body",
    )
    capture_headers: CSV = env_field(
        "CHATOBS_CAPTURE_HEADERS",
        default=[],
        doc="Request headers recorded on the request span (allow-list; secrets are never recorded).",
        example="user-agent,accept-language",
    )
    hash_secret: SecretStr | None = env_field(
        "CHATOBS_HASH_SECRET",
        default=None,
        secret=True,
        doc="Key for the `hash` operator and user-ID hashing (HMAC-SHA256); required by either.",
        example="change-me-32-random-bytes",
    )
    hash_user_ids: bool = env_field(
        "CHATOBS_HASH_USER_IDS",
        default=False,
        doc="Replace user IDs by their keyed hash in every exporter and metric.",
        example="true",
    )
    max_attribute_length: int = env_field(
        "CHATOBS_MAX_ATTRIBUTE_LENGTH",
        default=1000,
        ge=0,
        doc="Longest string attribute exported, cut after masking with a marker; 0 means no limit.",
        example="4000",
    )
    masking_worker: Literal["auto", "thread", "process"] = env_field(
        "CHATOBS_MASKING_WORKER",
        default="auto",
        doc="Where masking runs: a background `thread`, a separate `process` (keeps Presidio off the app's GIL), or `auto`.",
        example="process",
    )
    masking_timeout_s: float = env_field(
        "CHATOBS_MASKING_TIMEOUT_S",
        default=10.0,
        gt=0,
        doc="Longest wait for masking one batch; content not masked in time is dropped (replaced by a marker), never exported unmasked.",
        example="30",
    )

    @field_validator(
        "pii_entities",
        "pii_allow_list",
        "redact_attributes",
        "capture_headers",
        mode="before",
    )
    @classmethod
    def _csv_privacy(cls, value: Any) -> Any:
        return split_csv(value)

    @field_validator(
        "pii",
        "masking_worker",
        mode="before",
    )
    @classmethod
    def _lower_privacy(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def pii_mode(self) -> str:
        return "off" if not self.sanitize_pii else self.pii
