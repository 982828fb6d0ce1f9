"""Metric labels from span attributes, kept to a bounded number of series per label (cardinality limits)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from ...core import semconv
from ...core.numbers import as_int

if TYPE_CHECKING:
    pass
from .instruments import OTHER

# Distinct values kept per metric attribute before new ones are folded into "_OTHER": the SDK has no cardinality limit.
_LIMITS = {
    semconv.GEN_AI_REQUEST_MODEL: 200,
    semconv.GEN_AI_PROVIDER_NAME: 50,
    semconv.TENANT_ID: 1000,
    semconv.USER_ID: 2000,
    semconv.GEN_AI_TOOL_NAME: 500,
    semconv.MCP_SERVER_NAME: 100,
    semconv.MCP_METHOD_NAME: 50,
    semconv.HTTP_ROUTE: 200,
    semconv.ERROR_TYPE: 100,
    semconv.ALERT_RULE: 200,
}
_MAX_VALUE_LEN = 128
LABEL_CACHE_SIZE = 2048  # distinct raw label sets remembered per kind of span; cleared (and rebuilt) when full

# Date and version-pin suffixes that make one model look like many: gpt-4o-2024-08-06, claude-3-5-sonnet-20241022,
# claude-3-5-sonnet@20240620 (Vertex), gpt-4-0613 / gpt-3.5-turbo-0125 (OpenAI's MMDD pins).
_DATE_SUFFIX = re.compile(r"(?:[-@_](?:20\d{2}-?[01]\d-?[0-3]\d)|-(?:0[1-9]|1[0-2])[0-3]\d)$")


def normalize_model(name: Any) -> str:
    """Model name as a metric attribute: lower case, without provider path prefixes or date pins."""
    if not name:
        return ""
    model = str(name).strip().lower()
    if model.startswith("models/"):  # Gemini's resource names
        model = model[len("models/") :]
    model = _DATE_SUFFIX.sub("", model) or model
    return model[:_MAX_VALUE_LEN]


class Cardinality:
    """Keeps the first N distinct values of each attribute; later ones become "_OTHER" (memory stays bounded)."""

    def __init__(self) -> None:
        self._seen: dict[str, set[str]] = {}

    def __call__(self, key: str, value: Any) -> str:
        v = str(value)[:_MAX_VALUE_LEN]
        limit = _LIMITS.get(key)
        if limit is None:
            return v
        seen = self._seen.setdefault(key, set())
        if v in seen:
            return v
        if len(seen) >= limit:
            return OTHER
        seen.add(v)
        return v


def provider_of(attrs: Any) -> str:
    return str(attrs.get(semconv.GEN_AI_PROVIDER_NAME) or attrs.get(semconv.GEN_AI_SYSTEM) or "unknown")


def model_of(attrs: Any) -> str:
    return (
        normalize_model(attrs.get(semconv.GEN_AI_REQUEST_MODEL) or attrs.get(semconv.GEN_AI_RESPONSE_MODEL))
        or "unknown"
    )


def error_type(span: ReadableSpan, attrs: Any = None) -> str | None:
    """``error.type`` of a failed span: its attribute, a 5xx status, or ``_OTHER`` for an ERROR status."""
    if attrs is None:
        attrs = span.attributes or {}
    if attrs.get(semconv.ERROR_TYPE):
        return str(attrs[semconv.ERROR_TYPE])
    status = as_int(attrs.get(semconv.HTTP_RESPONSE_STATUS_CODE))
    if status is not None and status >= 500:
        return str(status)
    if span.status is not None and span.status.status_code == StatusCode.ERROR:
        return OTHER
    return None


_ID_SEGMENT = re.compile(r"^(?!v\d+$)(?=.*\d).+$|^.{20,}$")  # "v1", "v2": API versions, not IDs


def template_path(path: str) -> str:
    """A raw path as a low-cardinality route when the framework gave no template: ID-like segments become ``{id}``.

    Segments with a digit or of 20+ characters (UUIDs, conversation IDs, hashes) would otherwise make a series each.
    """
    if not path:
        return ""
    parts = str(path).split("?", 1)[0].split("/")
    return "/".join("{id}" if _ID_SEGMENT.match(p) else p for p in parts)
