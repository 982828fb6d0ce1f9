"""The trace viewer: a small read-only ASGI app over the local store.

    chatobs ui                                   # http://127.0.0.1:8765
    app.mount("/_chatobs", chatobs.tools.viewer.create_app())   # inside your own Starlette/FastAPI app

Starlette is imported only when the app is created, so ``import chatobs`` never needs it. Off unless started or
mounted; a request from beyond this machine needs ``CHATOBS_VIEWER_TOKEN``.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

__all__ = ["create_app", "is_loopback"]


def is_loopback(host: str | None) -> bool:
    """``True`` for 127.0.0.0/8, ::1 and ``localhost``."""
    if not host:
        return False
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(db_path: str | os.PathLike[str] | None = None, token: str | None = None) -> Any:
    """The viewer as an ASGI app reading ``db_path`` (default ``CHATOBS_LOCAL_DB``).

    ``token`` (default ``CHATOBS_VIEWER_TOKEN``) is then required from every client, as ``Authorization: Bearer``,
    ``?token=`` (which also sets a cookie) or that cookie. Without a token only loopback clients are served."""
    from .app import build_app

    if db_path is None:
        from ..cli.store import default_db

        db_path = default_db()
    if token is None:
        token = os.environ.get("CHATOBS_VIEWER_TOKEN") or None
    return build_app(Path(db_path), token)
