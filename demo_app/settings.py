"""What the demo runs against: the fake provider or a real one, which model, and how the MCP tool server is reached.

Read once from the environment (and the command line) by ``python -m demo_app``; the apps receive a ``DemoConfig``.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field, replace

DEFAULT_MODEL = "gpt-4o-mini"
# The demo's own GET endpoints are not chat turns: tracing them would bury the turns in the viewer.
DEMO_EXCLUDE_PATHS = "/health,/healthz,/favicon.ico,/static/*,/_chatobs/*,/api/config,/api/conversations*"


class DemoConfigError(ValueError):
    """A demo setting has a value the demo cannot use; the message names the variable and what is expected."""


@dataclass(frozen=True)
class DemoConfig:
    framework: str = "fastapi"
    host: str = "127.0.0.1"
    port: int = 8000
    # LLM: ``fake`` is True when no OPENAI_API_KEY is set and the demo starts its own fake provider.
    fake: bool = True
    base_url: str | None = None  # OpenAI base URL (``.../v1``); None means the SDK's default
    api_key: str = "demo-no-key"
    model: str = DEFAULT_MODEL
    llm_timeout_s: float = 60.0
    # MCP tool server: ``stdio`` (the app spawns it) or ``http`` (``python -m demo_app`` starts it, at ``mcp_url``).
    mcp_transport: str = "stdio"
    mcp_url: str | None = None
    mcp_command: tuple[str, ...] = field(
        default_factory=lambda: (sys.executable, "-m", "demo_app.mcp_server", "--transport", "stdio")
    )
    tool_timeout_s: float = 30.0
    viewer: bool = True  # mount chatobs's viewer at /_chatobs (only when traces go to the local store)

    def with_(self, **changes: object) -> DemoConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


def _positive_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise DemoConfigError(f"{name}={raw!r}: expected a number of seconds > 0") from None
    if not (value > 0 and math.isfinite(value)):
        raise DemoConfigError(f"{name}={raw!r}: expected a number of seconds > 0")
    return value


def from_env(**overrides: object) -> DemoConfig:
    """The demo configuration from ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``DEMO_MODEL``, ``DEMO_LLM_TIMEOUT``,
    ``DEMO_TOOL_TIMEOUT``; ``overrides`` (from the command line) win."""
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    cfg = DemoConfig(
        fake=not key,
        api_key=key or "demo-no-key",
        base_url=(os.environ.get("OPENAI_BASE_URL", "").strip() or None) if key else None,
        model=os.environ.get("DEMO_MODEL", "").strip() or DEFAULT_MODEL,
        llm_timeout_s=_positive_float("DEMO_LLM_TIMEOUT", 60.0),
        tool_timeout_s=_positive_float("DEMO_TOOL_TIMEOUT", 30.0),
    )
    return cfg.with_(**overrides) if overrides else cfg
