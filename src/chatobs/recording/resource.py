"""The OpenTelemetry ``Resource`` the settings describe: what every span and metric of this service carries."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.resources import Resource

from .. import __version__
from ..config import Settings


def build_resource(settings: Settings) -> Resource:
    attrs: dict[str, Any] = {}
    for part in settings.resource_attributes.split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            attrs[key.strip()] = value.strip()
    attrs["service.name"] = settings.service_name
    if settings.release:
        attrs.setdefault("service.version", settings.release)
    if settings.environment:
        attrs.setdefault("deployment.environment.name", settings.environment)
    attrs["telemetry.distro.name"] = "chatobs"
    attrs["telemetry.distro.version"] = __version__
    return Resource.create(attrs)
