"""Stored spans back to OTLP/JSON (``ExportTraceServiceRequest``), the format any OTLP/HTTP endpoint accepts with
``Content-Type: application/json``. IDs are hex strings and 64-bit integers decimal strings, as the OTLP spec says."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_KINDS = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}


def any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": key_values(value)}}
    return {"stringValue": "" if value is None else str(value)}


def key_values(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": any_value(v)} for k, v in attrs.items()]


def span_json(span: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": span["trace_id"],
        "spanId": span["span_id"],
        "name": span["name"],
        "kind": _KINDS.get(span.get("kind") or "internal", 1),
        "startTimeUnixNano": str(span["start_ns"]),
        "endTimeUnixNano": str(span["end_ns"]),
        "attributes": key_values(span.get("attributes") or {}),
        "status": {"code": 2, "message": span.get("status_message") or ""}
        if span.get("status") == "error"
        else {"code": 0},
    }
    if span.get("parent_id"):
        out["parentSpanId"] = span["parent_id"]
    events = span.get("events") or []
    if events:
        out["events"] = [
            {
                "timeUnixNano": str(e.get("time_ns") or 0),
                "name": e.get("name", ""),
                "attributes": key_values(e.get("attributes") or {}),
            }
            for e in events
        ]
    return out


def trace_request(spans: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One ``ExportTraceServiceRequest`` for ``spans``, grouped by resource."""
    groups: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    for s in spans:
        resource = s.get("resource") or {}
        key = repr(sorted(resource.items()))
        groups.setdefault(key, (resource, []))[1].append(span_json(s))
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": key_values(resource)},
                "scopeSpans": [{"scope": {"name": "chatobs.local"}, "spans": items}],
            }
            for resource, items in groups.values()
        ]
    }
