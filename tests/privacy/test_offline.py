"""Masking works with networking unavailable: Presidio's e-mail validation (tldextract) must never download."""

from __future__ import annotations

import socket

import pytest

from chatobs.core import semconv
from chatobs.processing.pii import engine as pii
from chatobs.processing.pii.engine import PiiConfig, PiiEngine
from chatobs.runtime.wiring import get_tracer

from .helpers import exported

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The one simulated part: networking is made unavailable by making every socket connect raise. Records the
    attempts so the test can assert that none was made (a swallowed failure would otherwise go unnoticed)."""
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network disabled by test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: refuse(None, address))  # type: ignore[arg-type, misc]
    return attempts


def test_fresh_engine_masks_emails_without_network(no_network: list[object], monkeypatch: pytest.MonkeyPatch) -> None:
    # A brand-new tldextract instance (nothing cached in memory): the public-suffix data must come from the snapshot.
    monkeypatch.setattr(pii, "_TLD", None)
    engine = PiiEngine(PiiConfig(entities=("EMAIL_ADDRESS",)))
    assert (
        engine.mask("write to ann@mail.example.co.uk or bob@startup.io")
        == "write to <EMAIL_ADDRESS> or <EMAIL_ADDRESS>"
    )
    assert no_network == []


def test_pipeline_masks_without_network(
    no_network: list[object], make_capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pii, "_TLD", None)
    cap = make_capture(masking_worker="thread")
    with get_tracer().start_as_current_span("s") as span:
        span.set_attribute(semconv.INPUT, "ann@example.com, 415-555-0132, 4111 1111 1111 1111")
    [out] = exported(cap)
    assert out.attributes[semconv.INPUT] == "<EMAIL_ADDRESS>, <PHONE_NUMBER>, <CREDIT_CARD>"
    assert no_network == []
