"""User feedback settings: the feedback tokens handed out beside trace IDs and the route browsers rate turns through."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from .fields import env_field


class FeedbackSettings(BaseSettings):
    """User feedback: the feedback tokens handed out beside trace IDs and the route browsers rate turns through."""

    feedback_key: SecretStr | None = env_field(
        "CHATOBS_FEEDBACK_KEY",
        default=None,
        secret=True,
        doc="Key that signs the feedback tokens handed out beside trace IDs. Unset: a random key kept in `feedback.key` (mode 0600) in the agent directory, shared by every worker of the host; set it (the same everywhere) when several hosts serve one app.",
        example="a-long-random-string",
    )
    feedback_token_header: str = env_field(
        "CHATOBS_FEEDBACK_TOKEN_HEADER",
        default="X-Feedback-Token",
        doc="Response header carrying a chat turn's feedback token (beside the trace ID header); empty disables it (`chatobs.feedback_token()` still works).",
        example="X-Rating-Token",
    )
    feedback_max_age_hours: float = env_field(
        "CHATOBS_FEEDBACK_MAX_AGE_HOURS",
        default=24.0,
        gt=0,
        doc="How long after a turn the feedback route accepts a rating of it.",
        example="168",
    )
    feedback_max_comment_chars: int = env_field(
        "CHATOBS_FEEDBACK_MAX_COMMENT_CHARS",
        default=2000,
        ge=0,
        le=100000,
        doc="Longest feedback comment accepted (longer: 400 from the route, ValueError from `chatobs.feedback()`).",
        example="500",
    )
    feedback_max_body_bytes: int = env_field(
        "CHATOBS_FEEDBACK_MAX_BODY_BYTES",
        default=8192,
        ge=256,
        doc="Largest body the feedback route reads (larger: 413, unread).",
        example="4096",
    )
    feedback_rate_per_minute: float = env_field(
        "CHATOBS_FEEDBACK_RATE_PER_MINUTE",
        default=20.0,
        gt=0,
        doc="Ratings the feedback route accepts per client address and minute (bursts of as many; then 429).",
        example="60",
    )
