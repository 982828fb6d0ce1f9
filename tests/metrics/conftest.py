from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from chatobs.processing.metrics import recorder as metrics

from .helpers import WebhookReceiver


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    """An in-memory reader on chatobs's MeterProvider (start chatobs after requesting it)."""
    r = InMemoryMetricReader()
    remove = metrics.register_reader(r)
    yield r
    remove()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    w = WebhookReceiver()
    yield w
    w.close()
