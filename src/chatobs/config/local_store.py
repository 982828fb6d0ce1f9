"""Local store and viewer settings: the local SQLite trace store and its viewer."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from .fields import env_field


class LocalStoreSettings(BaseSettings):
    """Local store and viewer: the local SQLite trace store and its viewer."""

    local_db: Path = env_field(
        "CHATOBS_LOCAL_DB",
        default=Path(".chatobs/traces.db"),
        doc="SQLite file of the local trace store (relative to the working directory).",
        example="/var/lib/chat/traces.db",
    )
    local_retention_days: float = env_field(
        "CHATOBS_LOCAL_RETENTION_DAYS",
        default=7.0,
        gt=0,
        doc="Traces older than this are removed from the local store.",
        example="30",
    )
    local_max_mb: float = env_field(
        "CHATOBS_LOCAL_MAX_MB",
        default=500.0,
        gt=0,
        doc="Size cap of the local store; the oldest traces go first.",
        example="2000",
    )
    viewer_token: SecretStr | None = env_field(
        "CHATOBS_VIEWER_TOKEN",
        default=None,
        secret=True,
        doc="Token the viewer requires when served on a non-loopback address (`?token=` or `Authorization: Bearer`).",
        example="a-long-random-string",
    )
    viewer_url: str | None = env_field(
        "CHATOBS_VIEWER_URL",
        default=None,
        doc="Base URL of the trace viewer, used for links in alerts and responses.",
        example="http://127.0.0.1:8000/_chatobs",
    )
