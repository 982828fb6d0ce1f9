"""Keyed hashing of identifiers, and the one exported form of a user ID under ``CHATOBS_HASH_USER_IDS=true``.

Spans (stamped by the scope processor, checked again by the redaction stage), metric labels and alert payloads all
take the user ID through :func:`user_id_hasher`, so a metric series or an alert can be joined to its traces.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["hash_key_hex", "hash_user_id", "keyed_hash", "user_id_hasher"]

_HASHED_ID = re.compile(r"^uh_[0-9a-f]{32}$")


def keyed_hash(key_hex: str, value: str, length: int = 16) -> str:
    """HMAC-SHA256 of ``value``: the same value correlates across traces and exporters but cannot be read back."""
    return hmac.new(bytes.fromhex(key_hex), value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:length]


def hash_user_id(key_hex: str, user_id: str) -> str:
    """``uh_`` + 32 hex of the keyed hash; idempotent (a hashed ID stays as is): the scope processor hashes before
    the pipeline sees the span, and every later stage must leave that value alone, not hash it again."""
    if _HASHED_ID.match(user_id):
        return user_id
    return "uh_" + keyed_hash(key_hex, user_id, 32)


def hash_key_hex(settings: Settings) -> str | None:
    """The user-ID hash key (hex) when ``CHATOBS_HASH_USER_IDS`` is on, else ``None``."""
    if not settings.hash_user_ids or settings.hash_secret is None:
        return None
    return settings.hash_secret.get_secret_value().encode().hex()


def user_id_hasher(settings: Settings) -> Callable[[str], str]:
    """How a user ID is exported everywhere (spans, metrics, alerts): as is, or :func:`hash_user_id`."""
    key_hex = hash_key_hex(settings)
    if key_hex is None:
        return str
    return lambda user_id: hash_user_id(key_hex, str(user_id))
