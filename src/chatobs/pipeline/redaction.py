"""Redaction stage of the background pipeline (placeholder until its issue lands)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Settings
    from .core import Stage


def build(settings: "Settings") -> "Stage | None":
    return None
