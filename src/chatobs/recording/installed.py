"""What the runtime installed, for the layers below it: the settings and the running runtime.

``chatobs.runtime.wiring.init()`` sets it in one call (:func:`install`) and ``shutdown()`` clears it (:func:`clear`);
the recording and processing parts read it here instead of importing the runtime, which sits above them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.resources import Resource

from ..config import Settings
from ..core import chat_scope
from . import framework_spans, light_spans

__all__ = ["clear", "install", "runtime_or_none", "settings_or_none"]

_settings: Settings | None = None  # also kept when chatobs is disabled, so middleware knows to pass through
_runtime: Any = None  # chatobs.runtime.wiring.Runtime; typed loosely as its class lives in the layer above


def install(
    settings: Settings,
    runtime: Any = None,
    *,
    user_id_transform: Callable[[str], str] | None = None,
    light_sink: Callable[[Any], None] | None = None,
    resource: Resource | None = None,
) -> None:
    """Hand every lower part what ``init()`` decided: the one place it is set. With ``runtime=None`` only the
    settings (chatobs disabled, or ``init()`` still building the pipeline)."""
    global _settings, _runtime
    _settings, _runtime = settings, runtime
    chat_scope.set_propagate_identity(settings.propagate_identity)
    if runtime is None:
        return
    chat_scope.set_user_id_transform(user_id_transform)
    framework_spans.configure(settings.framework_spans)
    light_spans.configure(light_sink, resource)


def clear() -> None:
    """What ``shutdown()`` leaves behind: nothing installed, every part back to its default (the user-ID transform
    stays, as spans still open may end after shutdown)."""
    global _settings, _runtime
    _settings, _runtime = None, None
    chat_scope.set_propagate_identity(True)
    framework_spans.configure(True)
    light_spans.configure(None, None)


def settings_or_none() -> Settings | None:
    return _settings


def runtime_or_none() -> Any:
    return _runtime
