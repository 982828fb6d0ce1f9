"""The user ID from a bearer JWT's claim (``CHATOBS_USER_JWT_CLAIM``), to label spans only.

The token is decoded with PyJWT *without* verifying its signature: anyone can forge it, so the value it yields is a
label on telemetry and never an identity chatobs (or the app, through chatobs) trusts for anything. A missing,
malformed or non-JWT token, or a claim that is not a string or number, yields nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

logger = logging.getLogger("chatobs")

# A JWT larger than this is not decoded (a bound on the work an arbitrary header can cause).
_MAX_TOKEN = 8192


def claim_from_headers(headers: Mapping[str, Sequence[str]], claim: str) -> Any:
    """The claim's value from ``Authorization: Bearer <jwt>``, or ``None``."""
    values = headers.get("authorization")
    if not values:
        return None
    scheme, _, token = values[0].strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > _MAX_TOKEN or token.count(".") != 2:
        return None
    try:
        import jwt

        payload = jwt.decode(token, options={"verify_signature": False})
    except Exception as exc:  # noqa: BLE001 - any bad token (or PyJWT gone) is ignored, never an error
        logger.debug("chatobs: ignored a bearer token that is not a readable JWT: %s", type(exc).__name__)
        return None
    return payload.get(claim) if isinstance(payload, dict) else None
