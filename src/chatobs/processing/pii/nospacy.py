"""Import Presidio's analyzer without spaCy, for pattern mode in the masking worker process.

``presidio_analyzer`` imports spaCy (and thinc, numpy...) at module level -- its NLP engines and ``NlpArtifacts`` name
spaCy's classes -- even when no NLP model is ever used. That is ~80 MB and a second of start-up in the worker for
nothing: pattern mode uses chatobs's own word splitter (``words.py``). While :func:`absent` is active, ``import spacy``
and ``import thinc`` (and their submodules) give placeholder modules holding exactly the names Presidio imports;
using one of them raises ``SpacyAbsent``. Only the worker (a process that is all chatobs's) does this, never an app
process, whose own code may need the real spaCy. If a Presidio version needs a name not listed here, the import fails
and the caller builds the engine again with the real spaCy (``pii.py``).
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["SpacyAbsent", "absent", "is_placeholder", "purge"]

_ROOTS = ("spacy", "thinc")


class SpacyAbsent(RuntimeError):
    """Something tried to use spaCy in the worker's pattern mode."""


def _decorator(*_args: Any, **_kwargs: Any) -> Callable[[Any], Any]:
    # Presidio registers its spaCy components and tokenizers at import time; nothing is registered here.
    return lambda fn: fn


class _PlaceholderMeta(type):
    def __call__(cls, *_args: Any, **_kwargs: Any) -> Any:
        raise SpacyAbsent(
            f"spaCy's {cls.__name__} is not available: the masking worker runs pattern mode without spaCy"
        )


class _Placeholder(metaclass=_PlaceholderMeta):
    factory = staticmethod(_decorator)  # Language.factory(...) as a decorator


class _Registry:
    def __getattr__(self, _name: str) -> Callable[..., Callable[[Any], Any]]:
        return _decorator  # registry.tokenizers("...") as a decorator


def _refuse(*_args: Any, **_kwargs: Any) -> Any:
    raise SpacyAbsent("spaCy is not available: the masking worker runs pattern mode without spaCy")


def _placeholder(name: str) -> type:
    return _PlaceholderMeta(name, (_Placeholder,), {})


# Every spaCy/thinc name presidio-analyzer imports at module level (checked against the pinned version by
# tests/privacy/test_presidio_light.py, which starts the worker and asserts it did not load the real spaCy).
_NAMES: dict[str, dict[str, Callable[[], Any]]] = {
    "spacy": {"Language": lambda: _placeholder("Language"), "blank": lambda: _refuse, "load": lambda: _refuse},
    "spacy.tokens": {n: functools.partial(_placeholder, n) for n in ("Doc", "Span", "Token", "SpanGroup")},
    "spacy.vocab": {"Vocab": lambda: _placeholder("Vocab")},
    "spacy.language": {"Language": lambda: _placeholder("Language")},
    "spacy.pipeline": {"Pipe": lambda: _placeholder("Pipe")},
    "spacy.util": {"registry": _Registry, "is_package": lambda: _refuse, "get_package_path": lambda: _refuse},
    "thinc": {},
    "thinc.api": {"get_torch_default_device": lambda: _refuse},
}


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] not in _ROOTS:
            return None
        if fullname not in _NAMES:
            return None  # not a name Presidio needs: the normal import (and its failure) happens
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = types.ModuleType(spec.name, "placeholder: spaCy is not loaded in the masking worker's pattern mode")
        module.__path__ = []  # a package, so that ``spacy.tokens`` can be imported below it
        for attr, make in _NAMES[spec.name].items():
            setattr(module, attr, make())
        module.__chatobs_placeholder__ = True  # type: ignore[attr-defined]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        parent, _, child = module.__name__.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, module)


@contextmanager
def absent() -> Iterator[bool]:
    """While active, spaCy and thinc resolve to placeholders. Yields False (and does nothing) when the real spaCy is
    already imported in this process."""
    if any(root in sys.modules for root in _ROOTS):
        yield False
        return
    finder = _Finder()
    sys.meta_path.insert(0, finder)
    try:
        yield True
    finally:
        sys.meta_path.remove(finder)


def is_placeholder(module_name: str) -> bool:
    return bool(getattr(sys.modules.get(module_name), "__chatobs_placeholder__", False))


def purge() -> None:
    """Forget the placeholders and every Presidio module imported with them, so that a retry imports the real ones."""
    for name in list(sys.modules):
        root = name.split(".")[0]
        if (root in _ROOTS and is_placeholder(name)) or root == "presidio_analyzer":
            del sys.modules[name]
