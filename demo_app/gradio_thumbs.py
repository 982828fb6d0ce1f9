"""Thumbs up/down beside every reply of the Gradio demo, recorded with ``chatobs.feedback()``.

Gradio's own like/dislike (the chatbot's ``like`` event) and an optional comment box. The click is handled on the
server, as a Gradio event, so it needs no feedback token from the browser; which trace a reply belongs to is kept in
a ``gr.State``, which Gradio holds on the server per session (a client can neither send nor read it): a click can
only rate a turn its own session produced, and only as the user that turn had.

Imported by ``gradio_app.create_app`` once it has set Gradio's environment. Gradio reads the handler's ``gr.LikeData``
hint with ``typing.get_type_hints``, so ``gradio`` is imported at module level here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

import chatobs

# Replies remembered per session (the newest kept): a long chat must not grow its state without end.
MAX_RATED_REPLIES = 500


@dataclass(frozen=True)
class RatedTurn:
    """What rating one reply needs: the turn's trace, its user, and its feedback token (with it the rating hangs off
    the turn's request span, and chatobs checks the rater against the turn's user once more)."""

    trace_id: str
    user_id: str | None
    token: str | None


Replies = dict[int, RatedTurn]


def remember_turn(replies: Replies | None, index: int) -> Replies:
    """``replies`` plus the running turn, whose reply is chat message ``index``; called inside the turn. Entries at or
    after ``index`` are dropped: a retry, undo or edit cut the chat back, and those messages are gone."""
    kept = {i: t for i, t in (replies or {}).items() if i < index}
    trace_id = chatobs.current_trace_id()
    if trace_id is None:  # chatobs is off: there is no trace to rate
        return kept
    scope = chatobs.current()
    kept[index] = RatedTurn(trace_id, scope.user_id if scope else None, chatobs.feedback_token())
    return dict(sorted(kept.items())[-MAX_RATED_REPLIES:])


def rate_reply(replies: Replies | None, index: Any, liked: Any, comment: str | None) -> str | None:
    """Record a click on the reply at chat message ``index``; ``None`` when recorded, else why not. Runs in the click's
    own Gradio event, whose chatobs scope names the rater exactly as the turn's scope named its user."""
    turn = (replies or {}).get(index) if isinstance(index, int) else None
    if turn is None:
        return "not a reply of this chat"
    if not isinstance(liked, bool):
        # Gradio sends "" when a thumb is clicked again to take it back; chatobs has no "unrate", the rating stays.
        return "no rating to record"
    scope = chatobs.current()
    if (scope.user_id if scope else None) != turn.user_id:
        return "only the user who had this reply can rate it"
    try:
        chatobs.feedback(
            turn.trace_id, liked, comment=(comment or "").strip() or None, user_id=turn.user_id, token=turn.token
        )
    except ValueError as exc:  # a comment too long, an expired token: the user is told, the app goes on
        return str(exc)
    return None


def rate(replies: Replies | None, comment: str, like: gr.LikeData) -> Any:
    """The ``like`` handler: clears the comment box once the rating is recorded, warns when it is refused."""
    refused = rate_reply(replies, like.index, like.liked, comment)
    if refused is None:
        return ""
    if isinstance(like.liked, bool):
        gr.Warning(f"Rating not recorded: {refused}")
    return gr.update()


def chat_with_thumbs(respond: Any, **chat_kwargs: Any) -> gr.Blocks:
    """A ``gr.ChatInterface`` for ``respond`` with thumbs and a comment box. ``respond(message, history, replies)``
    gets this session's replies and yields ``(text, replies)`` (``remember_turn`` at the turn's start)."""
    with gr.Blocks(title=chat_kwargs.get("title")) as demo:
        replies = gr.State({})
        chat = gr.ChatInterface(respond, additional_inputs=[replies], additional_outputs=[replies], **chat_kwargs)
        comment = gr.Textbox(
            label="Comment (optional)", placeholder="Sent with your next thumbs up or down", max_length=2000
        )
        chat.chatbot.like(rate, [replies, comment], [comment], api_visibility="undocumented")
    return demo
