"""Conversations kept in memory, as a chat app keeps them: the history is sent to the LLM on every turn.

Bounded (oldest conversations and messages are forgotten) and thread-safe: Flask serves requests from threads.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Action = Literal["send", "edit", "regenerate"]
ACTIONS: tuple[str, ...] = ("send", "edit", "regenerate")
MAX_CONVERSATIONS = 1000
MAX_MESSAGES = 200
# Named and versioned on every LLM span (chatobs.prompt): bump the version when the text changes.
SYSTEM_PROMPT_NAME = "demo-support"
SYSTEM_PROMPT_VERSION = "1"
SYSTEM_PROMPT = (
    "You are the support assistant of the chatobs demo. Answer briefly. Use the calculator tool for arithmetic, "
    "kb_lookup for support questions, and slow_lookup only when asked for it."
)


class TurnRejected(ValueError):
    """The request cannot start a turn (nothing to edit or regenerate, conversation of another user...)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Message:
    id: str
    role: Literal["user", "assistant"]
    content: str
    trace_id: str | None = None
    error: str | None = None  # set on a failed assistant turn; such messages are not sent to the LLM
    tools: list[dict[str, Any]] = field(default_factory=list)
    created: float = field(default_factory=time.time)


@dataclass
class Conversation:
    id: str
    user_id: str
    title: str = "New conversation"
    messages: list[Message] = field(default_factory=list)
    updated: float = field(default_factory=time.time)

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "updated": self.updated, "messages": len(self.messages)}

    def to_json(self) -> dict[str, Any]:
        return {**self.summary(), "user_id": self.user_id, "messages": [asdict(m) for m in self.messages]}


@dataclass
class Turn:
    """One chat turn being answered: what goes to the LLM, and where the answer will be stored."""

    conversation: Conversation
    action: Action
    user_message: Message
    llm_messages: list[dict[str, Any]]
    replaced_message_id: str | None = None  # the user or assistant message an edit/regenerate replaces


def new_id() -> str:
    return uuid.uuid4().hex


class ConversationStore:
    def __init__(self, max_conversations: int = MAX_CONVERSATIONS, max_messages: int = MAX_MESSAGES) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, Conversation] = OrderedDict()
        self.max_conversations = max_conversations
        self.max_messages = max_messages

    def list(self, user_id: str) -> list[dict[str, Any]]:
        with self._lock:
            mine = [c.summary() for c in self._items.values() if c.user_id == user_id]
        return sorted(mine, key=lambda c: c["updated"], reverse=True)

    def get(self, conversation_id: str, user_id: str) -> Conversation | None:
        with self._lock:
            conv = self._items.get(conversation_id)
        return conv if conv is not None and conv.user_id == user_id else None

    def begin(
        self, conversation_id: str | None, user_id: str, text: str, action: Action, message_id: str | None
    ) -> Turn:
        """Record the user's side of a turn and return the LLM's input. ``edit`` replaces the last user message and
        drops the answer to it; ``regenerate`` drops the last answer and asks again (``text`` is ignored)."""
        with self._lock:
            conv = self._items.get(conversation_id) if conversation_id else None
            if conv is not None and conv.user_id != user_id:
                raise TurnRejected("this conversation belongs to another user", status=403)
            if conv is None:
                if action != "send":
                    raise TurnRejected(f"nothing to {action}: unknown conversation", status=404)
                conv = Conversation(id=conversation_id or new_id(), user_id=user_id)
                self._items[conv.id] = conv
                while len(self._items) > self.max_conversations:
                    self._items.popitem(last=False)
            self._items.move_to_end(conv.id)
            replaced: str | None = None
            if action == "send":
                user = Message(id=message_id or new_id(), role="user", content=text)
                conv.messages.append(user)
                if conv.title == "New conversation":
                    conv.title = text.strip().splitlines()[0][:60] if text.strip() else conv.title
            else:
                last_user = next(
                    (i for i in range(len(conv.messages) - 1, -1, -1) if conv.messages[i].role == "user"), None
                )
                if last_user is None:
                    raise TurnRejected(f"nothing to {action}: the conversation has no message yet")
                old = conv.messages[last_user]
                answers = conv.messages[last_user + 1 :]
                del conv.messages[last_user + 1 :]
                if action == "edit":
                    replaced = old.id
                    user = Message(id=message_id or new_id(), role="user", content=text)
                    conv.messages[last_user] = user
                else:
                    replaced = answers[-1].id if answers else None
                    user = old
            del conv.messages[: max(0, len(conv.messages) - self.max_messages)]
            conv.updated = time.time()
            history = [m for m in conv.messages if not m.error]
            llm_messages = [{"role": "system", "content": SYSTEM_PROMPT}] + [
                {"role": m.role, "content": m.content} for m in history
            ]
            return Turn(
                conversation=conv,
                action=action,
                user_message=user,
                llm_messages=llm_messages,
                replaced_message_id=replaced,
            )

    def finish(
        self, turn: Turn, reply: str, trace_id: str | None, tools: list[dict[str, Any]], error: str | None = None
    ) -> Message:
        answer = Message(id=new_id(), role="assistant", content=reply, trace_id=trace_id, error=error, tools=tools)
        with self._lock:
            turn.conversation.messages.append(answer)
            turn.conversation.updated = time.time()
        return answer
