"""Loaded at start-up by every Python process ``chatobs run`` starts (see ``chatobs.runtime.bootstrap``): calls
``chatobs.init()`` right after the app's own module is imported, then hands over to any other ``sitecustomize``.

Standard library only, and nothing imported until the app's module is: this runs in every process of the command.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import sys
import threading
from typing import Any

# The modules whose import means "this process is the app": chatobs starts right after them.
APP_MODULES = frozenset({"open_webui.main"})
_HERE = os.path.dirname(os.path.abspath(__file__))


class _AppImportFinder:
    """Answers no import itself; for an app module, wraps the real loader so ``chatobs.init()`` runs after it.
    (The same trick as ``chatobs.recording.instrument.stainless``'s finder, repeated because importing that module would
    import chatobs into every process at start-up.)"""

    def __init__(self) -> None:
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in APP_MODULES or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._busy.discard(fullname)
        loader = getattr(spec, "loader", None)
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module: Any) -> None:
            original(module)
            _start_chatobs(fullname)

        loader.exec_module = exec_module
        return spec


def _start_chatobs(module: str) -> None:
    try:
        import chatobs

        chatobs.init()
    except Exception as exc:  # noqa: BLE001 - a bad setting or a broken install must not stop the app
        logging.getLogger("chatobs").error(
            "chatobs: not started in %s (chatobs run): %s: %s", module, type(exc).__name__, exc
        )


def _chain() -> None:
    """Run the ``sitecustomize`` this one shadows, if any (a virtualenv's, a distribution's)."""
    me = sys.modules.pop("sitecustomize", None)
    path = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        if me is not None:
            sys.modules["sitecustomize"] = me
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


if not any(isinstance(f, _AppImportFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _AppImportFinder())
_chain()
