"""SDK-neutral shapes of what an LLM call carries: request parameters, usage, messages and outputs as OTel GenAI attributes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ...core import semconv

# Request parameter (generic name, or another SDK's spelling) -> GenAI attribute: semconv's one table read the other
# way round. ``stream`` is left out: a call's stream flag is recorded from how it was made, not from its keyword
# arguments.
PARAM_ATTRIBUTES: dict[str, str] = {
    **{name: attr for attr, name in semconv.REQUEST_PARAMETERS.items() if attr != semconv.GEN_AI_REQUEST_STREAM},
    **semconv.REQUEST_PARAMETER_ALIASES,
}

# Usage key spellings (OpenAI, Anthropic, genai-prices, Google...) -> GenAI attribute.
USAGE_ATTRIBUTES: dict[str, str] = {
    "input_tokens": semconv.GEN_AI_USAGE_INPUT_TOKENS,
    "prompt_tokens": semconv.GEN_AI_USAGE_INPUT_TOKENS,
    "prompt_token_count": semconv.GEN_AI_USAGE_INPUT_TOKENS,
    "output_tokens": semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
    "completion_tokens": semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
    "candidates_token_count": semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
    "cache_read_input_tokens": semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "cache_read_tokens": semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "cached_tokens": semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "cache_creation_input_tokens": semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    "cache_write_tokens": semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    "reasoning_tokens": semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    "reasoning_output_tokens": semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
}


# --- message normalisation (OpenAI-style dicts, the lingua franca of most providers -> GenAI parts) --------------
def as_mapping(obj: Any) -> Mapping[str, Any]:
    if isinstance(obj, Mapping):
        return obj
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    return {"role": "user", "content": str(obj)}


def json_or_str(value: Any) -> Any:
    """Tool-call arguments as the GenAI conventions want them: the parsed JSON object, else the raw string."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def text_parts(content: Any) -> list[dict[str, Any]]:
    """GenAI parts for a message content: a string, a list of OpenAI/Anthropic-style parts, or anything else."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        parts: list[dict[str, Any]] = []
        for item in content:
            if isinstance(item, str):
                parts.append({"type": "text", "content": item})
                continue
            part = as_mapping(item)
            kind = part.get("type")
            if kind in ("text", "input_text", "output_text") or (kind is None and "text" in part):
                parts.append({"type": "text", "content": part.get("text", "")})
            elif kind in ("image_url", "input_image", "image"):
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, Mapping) else url
                if isinstance(url, str) and not url.startswith("data:"):
                    parts.append({"type": "uri", "modality": "image", "uri": url})
                else:  # inline data is large and rarely useful in a trace
                    parts.append({"type": "blob", "modality": "image", "content": "<omitted>"})
            elif kind in ("tool_use", "function_call"):
                parts.append(
                    {
                        "type": "tool_call",
                        "id": part.get("id") or part.get("call_id"),
                        "name": part.get("name"),
                        "arguments": json_or_str(part.get("input", part.get("arguments"))),
                    }
                )
            elif kind in ("tool_result", "function_call_output"):
                parts.append(
                    {
                        "type": "tool_call_response",
                        "id": part.get("tool_use_id") or part.get("call_id"),
                        "response": _flatten_text(part.get("content", part.get("output"))),
                    }
                )
            elif kind in ("thinking", "reasoning"):
                parts.append({"type": "reasoning", "content": part.get("thinking") or part.get("text") or ""})
            else:
                parts.append({"type": str(kind or "generic"), **{k: v for k, v in part.items() if k != "type"}})
        return parts
    return [{"type": "text", "content": str(content)}]


def _flatten_text(content: Any) -> Any:
    if isinstance(content, list):
        texts = [p.get("content") for p in text_parts(content) if p.get("type") == "text"]
        return "\n".join(t for t in texts if isinstance(t, str))
    return content


def normalize_messages(messages: Any) -> list[dict[str, Any]]:
    """OpenAI-style chat messages (or a single prompt string) -> GenAI input messages (``role`` + ``parts``)."""
    if messages is None:
        return []
    if isinstance(messages, str):
        return [{"role": "user", "parts": text_parts(messages)}]
    out: list[dict[str, Any]] = []
    for raw in messages:
        message = as_mapping(raw)
        if "parts" in message and "role" in message:  # already GenAI-shaped
            out.append(dict(message))
            continue
        role = message.get("role") or "user"
        if role == "tool" or role == "function":
            parts = [
                {
                    "type": "tool_call_response",
                    "id": message.get("tool_call_id") or message.get("name"),
                    "response": _flatten_text(message.get("content")),
                }
            ]
        else:
            parts = text_parts(message.get("content"))
            for call in message.get("tool_calls") or ():
                call = as_mapping(call)
                fn = as_mapping(call.get("function") or {})
                parts.append(
                    {
                        "type": "tool_call",
                        "id": call.get("id"),
                        "name": fn.get("name"),
                        "arguments": json_or_str(fn.get("arguments")),
                    }
                )
        entry: dict[str, Any] = {"role": role, "parts": parts}
        if message.get("name") and role != "function":
            entry["name"] = message["name"]
        out.append(entry)
    return out


def normalize_output(output: Any, finish_reason: str | None = None) -> list[dict[str, Any]]:
    """What ``LLMCall.record(output=...)`` accepts (a string, a message dict, or a list of them) -> output messages."""
    if output is None:
        return []
    if isinstance(output, str):
        messages = [{"role": "assistant", "parts": text_parts(output)}]
    elif isinstance(output, Mapping) or hasattr(output, "model_dump"):
        messages = normalize_messages([output])
    else:
        messages = normalize_messages(output)
    for m in messages:
        m.setdefault("role", "assistant")
        if finish_reason and "finish_reason" not in m:
            m["finish_reason"] = finish_reason
    return messages


def usage_attributes(usage: Any) -> dict[str, int]:
    """Token counts from a usage dict or object (any common spelling) -> GenAI usage attributes."""
    if usage is None:
        return {}
    items: Mapping[str, Any]
    if isinstance(usage, Mapping):
        items = usage
    else:
        items = {k: getattr(usage, k, None) for k in USAGE_ATTRIBUTES}
    attrs: dict[str, int] = {}
    for key, value in items.items():
        attr = USAGE_ATTRIBUTES.get(key)
        if attr is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and attr not in attrs:
            attrs[attr] = int(value)
    return attrs
