"""mcp 1.x (placeholder)."""
from __future__ import annotations
from typing import Any

def supported() -> bool:
    return False

def instrument() -> None: ...
def uninstrument() -> None: ...
def install_server(server: Any) -> None: ...
