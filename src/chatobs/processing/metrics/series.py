"""One metric series (an instrument and one fixed attribute set), recorded straight into the OTel SDK's aggregations.

Each ``Histogram.record`` / ``Counter.add`` of the SDK re-validates and re-hashes the attribute set, once per reader,
before it reaches the aggregation of that set (~20 us per call; a chat turn makes a dozen). chatobs records the same
few attribute sets over and over, so a :class:`Series` does that work once: its first value goes through the public
API, which creates the aggregations; it then looks them up and hands later values to them directly -- the same calls,
with the same ``Measurement``, the SDK makes itself (exemplar filter included), so what the readers collect is the same.

This leans on the internals of the installed opentelemetry-sdk (checked by :func:`direct_path_available`; a test
compares both paths' collected data point by point). Whatever does not look as expected -- another SDK version, a
reader added later, a disabled meter -- makes the series use the public API, as it would without this module.
"""

from __future__ import annotations

import logging
import math
from time import time_ns
from typing import Any

from opentelemetry.context import get_current

logger = logging.getLogger("chatobs")

__all__ = ["Direct", "Series", "direct_path_available"]


def _sdk_parts() -> tuple[Any, Any] | None:
    try:
        from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes
        from opentelemetry.sdk.metrics._internal.measurement import Measurement
    except ImportError:
        return None
    return Measurement, _hash_attributes


def direct_path_available(provider: Any) -> bool:
    """Whether ``provider`` (an SDK ``MeterProvider``) is built the way :class:`Series` expects."""
    consumer = getattr(provider, "_measurement_consumer", None)
    storages = getattr(consumer, "_reader_storages", None)
    config = getattr(consumer, "_sdk_config", None)
    return (
        _sdk_parts() is not None
        and isinstance(storages, dict)
        and hasattr(getattr(config, "exemplar_filter", None), "should_sample")
        and all(isinstance(getattr(s, "_instrument_view_instrument_matches", None), dict) for s in storages.values())
    )


class Direct:
    """The SDK internals a provider's series share; ``enabled`` goes False for good on the first surprise."""

    def __init__(self, provider: Any) -> None:
        self.enabled = direct_path_available(provider)
        self._consumer = getattr(provider, "_measurement_consumer", None)
        parts: tuple[Any, Any] = _sdk_parts() or (None, None)
        self.measurement_cls, self.hash_attributes = parts

    def storages(self) -> Any:
        # Replaced (never changed in place) when a reader is added or removed: identity tells series to look again.
        return self._consumer._reader_storages  # type: ignore[union-attr]

    def exemplar_filter(self) -> Any:
        return self._consumer._sdk_config.exemplar_filter  # type: ignore[union-attr]

    def find(self, instrument: Any, attributes: dict[str, Any], storages: Any) -> list[Any] | None:
        """The aggregations the SDK feeds for (instrument, attributes), in its order; ``None`` if one is missing."""
        found = []
        for storage in storages.values():
            matches = storage._instrument_view_instrument_matches.get(instrument)
            if matches is None:
                return None
            for match in matches:
                keys = match._view._attribute_keys
                attrs = dict(attributes) if keys is None else {k: v for k, v in attributes.items() if k in keys}
                aggregation = match._attributes_aggregation.get(self.hash_attributes(attrs))
                if aggregation is None:
                    return None
                found.append(aggregation)
        return found

    def disable(self, exc: BaseException) -> None:
        if self.enabled:
            self.enabled = False
            logger.info(
                "chatobs: recording metrics through the OTel SDK's public API from now on (%s: %s)",
                type(exc).__name__,
                exc,
            )


class Series:
    """``instrument`` with one fixed attribute set (never changed after construction)."""

    __slots__ = ("_aggregations", "_attributes", "_clean", "_direct", "_emit", "_instrument", "_storages")

    def __init__(self, instrument: Any, attributes: dict[str, Any], direct: Direct, *, counter: bool) -> None:
        self._instrument = instrument
        self._attributes = attributes
        self._emit = instrument.add if counter else instrument.record
        self._direct = direct
        self._aggregations: list[Any] | None = None
        self._storages: Any = None
        self._clean: Any = None  # the attributes as the SDK's Measurement cleaned them

    @property
    def attributes(self) -> dict[str, Any]:
        return self._attributes

    def record(self, value: float) -> None:
        aggregations = self._aggregations
        if aggregations is not None and value >= 0 and math.isfinite(value):
            direct = self._direct
            try:
                ready = direct.enabled and direct.storages() is self._storages and self._instrument._is_enabled()
                if ready:
                    now = time_ns()
                    context = get_current()
                    measurement = direct.measurement_cls(value, now, self._instrument, context, None)
                    object.__setattr__(
                        measurement, "attributes", self._clean
                    )  # cleaned once, when the series was learnt
                    sample = direct.exemplar_filter().should_sample(value, now, self._clean, context)
            except Exception as exc:  # noqa: BLE001 - nothing recorded yet: the public API records this value
                direct.disable(exc)
                ready = False
            if ready:
                for aggregation in aggregations:
                    aggregation.aggregate(measurement, sample)
                return
        # The public API: the first value of the series, after a reader change, or a value it warns about and drops.
        self._emit(value, self._attributes)
        direct = self._direct
        if direct.enabled and (aggregations is None or self._storages is not direct.storages()):
            self._learn()

    def _learn(self) -> None:
        """After a value went through the public API: find the aggregations it reached, for the next values."""
        direct = self._direct
        try:
            storages = direct.storages()
            clean = direct.measurement_cls(0, 0, self._instrument, None, self._attributes).attributes
            self._aggregations = direct.find(self._instrument, clean or {}, storages)
            self._clean, self._storages = clean, storages
        except Exception as exc:  # noqa: BLE001
            self._aggregations = None
            direct.disable(exc)
