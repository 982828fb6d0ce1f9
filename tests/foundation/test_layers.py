"""The layer contract of ``src/chatobs``: every import points down the layer order, and no module imports itself back
through others, counting imports inside functions and under ``TYPE_CHECKING`` (docs/architecture.md)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "chatobs"

# Lowest first. A module may import its own layer and those before it.
LAYERS = ("core", "config", "recording", "processing", "export", "runtime", "tools")

# Known upward imports still to be turned around (the runtime passing what each part needs into it). The list may
# only shrink: a new upward import fails the test, and so does an entry here that no longer exists.
KNOWN_UPWARD: frozenset[tuple[str, str]] = frozenset(
    {
        # alert rule files are checked when the settings load (a bad rule fails init() naming the file)
        ("chatobs.config", "chatobs.processing.alerts.rules"),
        # the tracer, the settings and the running pipeline, looked up from the runtime instead of handed in
        ("chatobs.core.chat_scope", "chatobs.runtime.wiring"),
        ("chatobs.processing.metrics.prometheus", "chatobs.runtime.wiring"),
        ("chatobs.processing.metrics.recorder", "chatobs.runtime.wiring"),
        ("chatobs.processing.sampling", "chatobs.runtime.wiring"),
        ("chatobs.recording.instrument.generation", "chatobs.runtime.wiring"),
        ("chatobs.recording.instrument.mcp", "chatobs.runtime.wiring"),
        ("chatobs.recording.instrument.mcp.v1", "chatobs.runtime.wiring"),
        ("chatobs.recording.instrument.mcp.v2", "chatobs.runtime.wiring"),
        ("chatobs.recording.light_spans", "chatobs.runtime.wiring"),
        ("chatobs.recording.middleware.asgi", "chatobs.runtime.wiring"),
        ("chatobs.recording.middleware.extract", "chatobs.runtime.wiring"),
        ("chatobs.recording.middleware.request", "chatobs.runtime.wiring"),
        ("chatobs.recording.middleware.ws_turns", "chatobs.runtime.wiring"),
        ("chatobs.recording.feedback.record", "chatobs.runtime.wiring"),
        ("chatobs.recording.feedback.route", "chatobs.runtime.wiring"),
        ("chatobs.recording.feedback.token", "chatobs.runtime.wiring"),
    }
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, imported module or module.name) for every import in ``source``, relative ones resolved."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                yield node.lineno, f"{target}.{alias.name}"


def layer_of(name: str) -> int | None:
    parts = name.split(".")
    if len(parts) < 2 or parts[0] != "chatobs" or parts[1] not in LAYERS:
        return None
    return LAYERS.index(parts[1])


def _graph() -> tuple[dict[str, list[tuple[int, str]]], set[str]]:
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, list[tuple[int, str]]] = {}
    for name, path in files.items():
        edges = []
        for line, target in imports_of(path.read_text(), name, path.name == "__init__.py"):
            # "from pkg import sub" names a module; "from mod import attr" names the module itself
            resolved = target if target in files else target.rpartition(".")[0]
            if resolved in files and resolved != name:
                edges.append((line, resolved))
        graph[name] = edges
    return graph, set(files)


def upward_imports() -> set[tuple[str, str, int]]:
    graph, _ = _graph()
    found = set()
    for name, edges in graph.items():
        mine = layer_of(name)
        if mine is None:
            continue  # chatobs/__init__.py: the public names, imported lazily from every layer
        for line, target in edges:
            theirs = layer_of(target)
            if theirs is not None and theirs > mine:
                found.add((name, target, line))
    return found


def cycles(skip: frozenset[tuple[str, str]] = frozenset()) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan): modules that import each other, the edges in
    ``skip`` left out."""
    graph, modules = _graph()
    graph = {v: [(line, w) for line, w in edges if (v, w) not in skip] for v, edges in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for _, w in graph.get(v, []):
            if w == "chatobs":
                continue  # the lazy public facade: attribute access, never imported by a layer
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for m in sorted(modules):
        if m not in index and m != "chatobs":
            visit(m)
    return out


def test_every_module_is_in_a_layer() -> None:
    loose = [
        module_name(p) for p in SRC.rglob("*.py") if module_name(p) != "chatobs" and layer_of(module_name(p)) is None
    ]
    assert loose == [], f"modules outside the layers {LAYERS}: {loose}"


def test_imports_point_down() -> None:
    found = upward_imports()
    new = sorted(f"{a} (line {line}) imports {b}" for a, b, line in found if (a, b) not in KNOWN_UPWARD)
    assert new == [], "upward imports (a lower layer must be handed what it needs):\n" + "\n".join(new)
    gone = sorted(KNOWN_UPWARD - {(a, b) for a, b, _ in found})
    assert gone == [], f"fixed upward imports still listed in KNOWN_UPWARD: {gone}"


def test_no_import_cycles_but_through_the_known_upward_imports() -> None:
    found = cycles(skip=KNOWN_UPWARD)
    assert found == [], "modules that import each other:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_check_sees_an_import_inside_a_function() -> None:
    found = list(imports_of("def f():\n    from ..runtime import wiring\n", "chatobs.core.x", False))
    assert found == [(2, "chatobs.runtime.wiring")]
    assert layer_of("chatobs.runtime.wiring") > layer_of("chatobs.core.x")  # type: ignore[operator]
