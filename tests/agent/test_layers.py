"""The new layers import only downward: nothing in ``chatobs.core`` or ``chatobs.recording`` imports the agent or the
runtime, counting imports inside functions (issue 15's rule, for the code this change adds)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "chatobs"
FORBIDDEN = ("chatobs.runtime",)


def _imports(path: Path) -> list[str]:
    return _imports_of(path.read_text(), "chatobs." + ".".join(path.relative_to(SRC).with_suffix("").parts[:-1]))


def _imports_of(source: str, package: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rstrip(".").split(".")
            if node.level:
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.append(mod)
            found += [f"{mod}.{a.name}" for a in node.names]
    return found


def test_core_and_recording_import_neither_the_runtime_nor_the_agent() -> None:
    # the agent link; the layer contract over the whole package is tests/foundation/test_layers.py
    files = [SRC / "core" / n for n in ("client.py", "launch.py", "sockdir.py", "wire.py")]
    files.append(SRC / "recording" / "handoff.py")
    bad = [(f.name, m) for f in files for m in _imports(f) if m.startswith(FORBIDDEN)]
    assert bad == []


def test_core_imports_no_other_chatobs_layer_but_config() -> None:
    for f in [SRC / "core" / n for n in ("client.py", "launch.py", "sockdir.py", "wire.py")]:
        others = [
            m for m in _imports(f) if m.startswith("chatobs.") and not m.startswith(("chatobs.core", "chatobs.config"))
        ]
        assert others == [], f.name


def test_the_check_sees_a_function_level_import() -> None:
    assert "chatobs.runtime" in _imports_of("def f():\n    from ..runtime import get_runtime\n", "chatobs.recording")
