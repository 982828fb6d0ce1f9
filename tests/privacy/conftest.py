"""Build the shared Presidio analyzer once per test session, outside any test's flush window (it takes seconds)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _warm_presidio() -> None:
    from chatobs.processing.pii.engine import PiiConfig, get_engine

    get_engine(PiiConfig()).mask("warm up: 415-555-0132 ann@example.com")
