"""Stand-in for the feedback settings until they join the settings object (issue 15 moves config.py today)."""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    "feedback_key": None,
    "feedback_max_age_hours": 24.0,
    "feedback_max_comment_chars": 2000,
    "feedback_max_body_bytes": 8192,
    "feedback_rate_per_minute": 20.0,
    "feedback_token_header": "X-Feedback-Token",
}


def setting(settings: Any, name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])
