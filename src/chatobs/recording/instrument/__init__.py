"""Auto-instrumentation of the SDKs named in ``CHATOBS_INSTRUMENT``, each when importable.

Each adapter module exposes ``instrument(settings) -> bool`` (True when it patched something) and ``uninstrument()``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import TYPE_CHECKING

from ...core.guard import guard

if TYPE_CHECKING:
    from ...config import Settings

logger = logging.getLogger("chatobs")

ADAPTERS = {
    "openai": ("openai", "chatobs.recording.instrument.openai"),
    "anthropic": ("anthropic", "chatobs.recording.instrument.anthropic"),
    "mcp": ("mcp", "chatobs.recording.instrument.mcp"),
    # LLM calls over plain HTTP (see chatobs.recording.instrument.http)
    "httpx": ("httpx", "chatobs.recording.instrument.http.httpx_client"),
    "requests": ("requests", "chatobs.recording.instrument.http.requests_client"),
    "aiohttp": ("aiohttp", "chatobs.recording.instrument.http.aiohttp_client"),
    "gradio": ("gradio", "chatobs.recording.instrument.gradio"),
    "threads": ("concurrent.futures", "chatobs.recording.instrument.threads"),
}


def instrument_all(settings: Settings) -> list[str]:
    done: list[str] = []
    for name in settings.instrument:
        package, module_name = ADAPTERS[name]
        if importlib.util.find_spec(package) is None:
            continue
        with guard(f"instrument {name}"):
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name == module_name:
                    continue  # adapter not written yet
                raise
            if module.instrument(settings):
                done.append(name)
    return done


def uninstrument_all() -> None:
    for _, module_name in ADAPTERS.values():
        with guard("uninstrument"):
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError:
                continue
            module.uninstrument()
