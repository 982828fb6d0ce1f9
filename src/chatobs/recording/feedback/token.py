"""Feedback tokens: proof that chatobs handed out a trace ID, to whom, and when.

The middleware puts a token beside the trace ID in every chat turn's response (``CHATOBS_FEEDBACK_TOKEN_HEADER``);
the feedback route accepts a rating only with a token that is genuine, names the rated trace, is younger than
``CHATOBS_FEEDBACK_MAX_AGE_HOURS`` and was issued to the same user as the one rating (when the turn knew its user).

A token is ``base64url(payload || mac)``: the payload holds the trace ID, the request span's ID, the trace's time in
milliseconds (the Opik exporter's ID time, see ``middleware.tracecontext.trace_time_ms``) and the sampled flag; the
MAC is HMAC-SHA256 over the payload and the user ID, truncated to 128 bits. Written by hand (a few lines of the
standard library's ``hmac``): a JWT library would add a dependency and a larger token for the same check.

The key is ``CHATOBS_FEEDBACK_KEY`` (set it when several hosts serve one app), else a random key kept in
``feedback.key`` (mode 0600) in the agent's private socket directory, created once by whichever process needs it
first, so every worker of the host verifies the others' tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core.chat_scope import current, request_span
from ..middleware import tracecontext

__all__ = ["KEY_FILE", "TokenError", "TokenFacts", "issue", "key_for", "verify"]

KEY_FILE = "feedback.key"
_VERSION = 1
_PAYLOAD = struct.Struct(">B16s8sQB")  # version, trace ID, span ID, trace time (ms), flags
_MAC_BYTES = 16
_FLAG_SAMPLED = 1
_FLAG_USER = 2
_TOKEN_CHARS = ((_PAYLOAD.size + _MAC_BYTES) * 4 + 2) // 3  # unpadded base64 length

_key_lock = threading.Lock()
_keys: dict[str, bytes] = {}  # CHATOBS_AGENT_DIR as configured -> key (one file read per process)


class TokenError(ValueError):
    """The token is missing, malformed, forged, expired or not the caller's; the message says which."""


@dataclass(frozen=True, slots=True)
class TokenFacts:
    trace_id: str  # 32 hex
    span_id: str  # 16 hex: the turn's request span
    trace_ms: int
    sampled: bool


def key_for(settings: Any) -> bytes:
    """The signing key: the setting, else the host's key file (created 0600 on first use)."""
    configured = settings.feedback_key
    if configured is not None:
        return hashlib.sha256(b"chatobs-feedback\0" + configured.get_secret_value().encode()).digest()
    configured_dir = getattr(settings, "agent_dir", None)
    cache_key = str(configured_dir)
    key = _keys.get(cache_key)  # every chat turn asks: a dict lookup, no file system call after the first
    if key is not None:
        return key
    from ...core import sockdir

    with _key_lock:
        key = _keys.get(cache_key)
        if key is None:
            key = _keys[cache_key] = _load_or_create(sockdir.checked_dir(configured_dir) / KEY_FILE)
        return key


def _load_or_create(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it; it may still be writing the 32 bytes.
        for _ in range(50):
            data = path.read_bytes()
            if len(data) == 32:
                return data
            time.sleep(0.01)
        raise OSError(f"{path}: expected a 32-byte feedback key; remove the file to have a new one made") from None
    try:
        key = secrets.token_bytes(32)
        os.write(fd, key)
    finally:
        os.close(fd)
    return key


_keyed: dict[bytes, Any] = {}  # key -> an HMAC already keyed with it (a handful of keys per process at most)


def _mac(key: bytes, payload: bytes, user_id: str | None) -> bytes:
    user = (user_id or "").encode("utf-8", "surrogatepass")
    # Copying a keyed HMAC skips keying it again: half the cost of hmac.digest() here, and every chat turn pays it
    # (benchmarks/bench_feedback.py).
    base = _keyed.get(key)
    if base is None:
        if len(_keyed) >= 16:
            _keyed.clear()
        base = _keyed[key] = hmac.new(key, digestmod=hashlib.sha256)
    h = base.copy()
    h.update(payload + b"\0" + user)
    return h.digest()[:_MAC_BYTES]


def issue(key: bytes, trace_id: str, span_id: str, *, trace_ms: int, sampled: bool, user_id: str | None) -> str:
    return _issue(key, int(trace_id, 16), int(span_id, 16), trace_ms, sampled, user_id)


def _issue(key: bytes, trace_id: int, span_id: int, trace_ms: int, sampled: bool, user_id: str | None) -> str:
    flags = (_FLAG_SAMPLED if sampled else 0) | (_FLAG_USER if user_id else 0)
    payload = _PAYLOAD.pack(_VERSION, trace_id.to_bytes(16, "big"), span_id.to_bytes(8, "big"), trace_ms, flags)
    return base64.urlsafe_b64encode(payload + _mac(key, payload, user_id)).rstrip(b"=").decode("ascii")


def verify(
    key: bytes, token: Any, trace_id: str, *, user_id: str | None, max_age_s: float, now_ms: int | None = None
) -> TokenFacts:
    """The token's facts if it is genuine, for ``trace_id``, fresh, and ``user_id``'s; else ``TokenError``."""
    if not isinstance(token, str) or not token:
        raise TokenError("token: expected the feedback token the chat response carried beside the trace ID")
    if len(token) != _TOKEN_CHARS:
        raise TokenError(f"token: expected {_TOKEN_CHARS} characters, got {len(token)}")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("token: not a feedback token (expected base64url)") from None
    payload, mac = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
    version, tid, sid, trace_ms, flags = _PAYLOAD.unpack(payload)
    if version != _VERSION:
        raise TokenError(f"token: version {version} is not one this chatobs issues")
    user_bound = bool(flags & _FLAG_USER)
    if not hmac.compare_digest(mac, _mac(key, payload, user_id if user_bound else None)):
        if user_bound and not user_id:
            raise TokenError("token: this trace belongs to a user; send the same user identity as the chat request")
        raise TokenError("token: not issued by this app for this user (forged, or another user's)")
    if tid.hex() != trace_id:
        raise TokenError("trace_id: does not match the token (a token rates only the trace it came with)")
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if now_ms - trace_ms > max_age_s * 1000:
        raise TokenError(f"token: expired (older than {max_age_s / 3600:g} hours)")
    if trace_ms - now_ms > 300_000:
        raise TokenError("token: issued in the future (clock skew over 5 minutes)")
    return TokenFacts(trace_id=tid.hex(), span_id=sid.hex(), trace_ms=trace_ms, sampled=bool(flags & _FLAG_SAMPLED))


def token_for(settings: Any, span: Any, user_id: str | None) -> str | None:
    """The feedback token for a turn whose request span is ``span`` (``None`` if it is not recording)."""
    sc = span.get_span_context()
    if not sc.is_valid:
        return None
    start_ms = (getattr(span, "start_time", None) or time.time_ns()) // 1_000_000
    # With Opik on, the time every Opik ID of this trace carries (fixed now if nothing fixed it yet), so feedback
    # sent from anywhere later lands on the same Opik trace; otherwise the turn's start.
    trace_ms = tracecontext.trace_time_ms(sc.trace_id, start_ms, sc.trace_state) if tracecontext._stamp else start_ms
    return _issue(key_for(settings), sc.trace_id, sc.span_id, trace_ms, sc.trace_flags.sampled, user_id)


def current_token() -> str | None:
    """``chatobs.feedback_token()``: the token of the chat turn being handled (to put in a response body or a
    WebSocket message), or ``None`` outside one or when chatobs is off."""
    from ..installed import settings_or_none

    settings = settings_or_none()
    s = current()
    if settings is None or not settings.active or s is None or not s.chat_turn:
        return None
    return safe_token_for(settings, request_span(), s.user_id)


def safe_token_for(settings: Any, span: Any, user_id: str | None) -> str | None:
    """:func:`token_for`, or ``None`` (logged) when no key can be had: the turn goes on without a token."""
    try:
        return token_for(settings, span, user_id)
    except Exception:  # noqa: BLE001 - e.g. an unusable agent directory
        from ...core.guard import log_limited

        log_limited("feedback-token", "chatobs: no feedback token (set CHATOBS_FEEDBACK_KEY or fix CHATOBS_AGENT_DIR)")
        return None
