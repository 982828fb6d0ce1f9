"""LLM call settings: which SDKs are instrumented, content capture and LLM calls over plain HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import field_validator
from pydantic_settings import BaseSettings

from .fields import CSV, env_field, split_csv

INSTRUMENT_NAMES = ("openai", "anthropic", "mcp", "httpx", "requests", "aiohttp", "gradio", "threads")


class LLMSettings(BaseSettings):
    """LLM calls: which SDKs are instrumented, content capture and LLM calls over plain HTTP."""

    instrument: CSV = env_field(
        "CHATOBS_INSTRUMENT",
        default=list(INSTRUMENT_NAMES),
        doc="What to auto-instrument when importable: the `openai`, `anthropic` and `mcp` SDKs; the HTTP clients `httpx`, `requests`, `aiohttp` (their calls to LLM endpoints become LLM spans); `gradio` (a queued function runs in the trace of the request that submitted it, see docs/integrations.md) and `threads` (`concurrent.futures.ThreadPoolExecutor.submit` and `loop.run_in_executor` keep the turn's scope and span); empty for none.",
        example="openai,mcp",
    )
    capture_content: bool = env_field(
        "CHATOBS_CAPTURE_CONTENT",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        default=True,
        doc="Record prompts, replies and decorator inputs/outputs on spans (masked before export).",
        example="false",
    )
    openai_stream_usage: bool = env_field(
        "CHATOBS_OPENAI_STREAM_USAGE",
        default=True,
        doc="Ask OpenAI for token usage on streamed chat completions (`stream_options.include_usage`) and hide the extra usage-only chunk from the app.",
        example="false",
    )
    http_llm_hosts: CSV = env_field(
        "CHATOBS_HTTP_LLM_HOSTS",
        default=[],
        doc="Hosts whose LLM-shaped HTTP requests (`httpx`, `requests`, `aiohttp`) become LLM spans, comma separated; a leading `*.` matches subdomains; empty means any host.",
        example="api.openai.com,*.openai.azure.com,llm.internal",
    )
    http_llm_providers: CSV = env_field(
        "CHATOBS_HTTP_LLM_PROVIDERS",
        default=[],
        doc="`host=provider` pairs naming the `gen_ai.provider.name` of LLM calls made over plain HTTP to that host (well-known hosts are named already; others get the host name).",
        example="llm.internal=openai,127.0.0.1:8765=vllm",
    )
    http_llm_max_body_bytes: int = env_field(
        "CHATOBS_HTTP_LLM_MAX_BODY_BYTES",
        default=4 * 1024 * 1024,
        ge=0,
        doc="Largest LLM request or non-streamed response body read over plain HTTP; a larger one is passed on untouched and its span has no content or usage. Streams are parsed as they pass whatever their length.",
        example="1048576",
    )
    pricing_file: Path | None = env_field(
        "CHATOBS_PRICING_FILE",
        "MCP_TOKEN_PRICING_CONFIG",
        default=None,
        doc="YAML file of prices per 1K tokens that overrides or adds models (`default:` and `models:` keys).",
        example="./pricing.yaml",
    )

    @field_validator(
        "instrument",
        "http_llm_hosts",
        "http_llm_providers",
        mode="before",
    )
    @classmethod
    def _csv_llm(cls, value: Any) -> Any:
        return split_csv(value)

    @field_validator("instrument")
    @classmethod
    def _known_instruments(cls, value: list[str]) -> list[str]:
        names = [v.lower() for v in value]
        bad = [v for v in names if v not in INSTRUMENT_NAMES]
        if bad:
            raise ValueError(f"unknown SDK {bad[0]!r}; expected a comma list of {', '.join(INSTRUMENT_NAMES)}")
        return names

    @field_validator("http_llm_providers")
    @classmethod
    def _host_pairs(cls, value: list[str]) -> list[str]:
        for pair in value:
            host, _, provider = pair.partition("=")
            if not host.strip() or not provider.strip():
                raise ValueError(f"expected host=provider pairs separated by commas, got {pair!r}")
        return value
