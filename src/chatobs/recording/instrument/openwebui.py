"""Open WebUI (0.12): every chat turn is one trace with the chat, its message IDs and the user, from the first turn on.

Open WebUI is an app users run, not write (``open-webui serve``), so nothing here needs its code changed: when
``open_webui.main`` is imported (``chatobs run open-webui serve`` makes that call ``init()``), chatobs

- traces only its chat turns (``CHAT_ROUTES``) unless ``CHATOBS_CHAT_ROUTES`` is set;
- adds :class:`~chatobs.ChatObsMiddleware` to its FastAPI app, with an extractor reading the chat (``chat_id``), the
  message being generated (``id``) and the user message it answers (``user_message.id``) from the request body, and
  the user from Open WebUI's own session token, checked with Open WebUI's ``decode_token`` (its secret, its rules);
- learns the chat of a **first turn**, which has no ``chat_id`` yet (Open WebUI creates it inside
  ``POST /api/chat/completions``), where it is stored (``Chats.insert_new_chat``), and the IDs of a later turn
  whose body was too large to read (``Chats.insert_chat_turn``): the request span gets them, and so does everything
  the request starts after that point (the turn's task, the title generation);
- gives the turn's task (Open WebUI answers at once and runs the model in an asyncio task, streaming over socket.io)
  the IDs of Open WebUI's own metadata (``process_chat_payload``), whatever the request carried, and (with
  ``CHATOBS_OPENAI_STREAM_USAGE``) asks an OpenAI connection for the token usage of a streamed reply;
- wraps the title, tags and follow-up generations that run after the reply in an ``openwebui <task>`` span of the turn.

Message IDs follow Open WebUI's tree: ``chatobs.message.id`` is the assistant message the turn generates (the one a
rating or a follow-up refers to), ``chatobs.parent_message.id`` the user message it answers.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from dataclasses import replace
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from ...core.chat_scope import ChatScope, context_with_scope, current, identity_attributes, request_span
from ...core.guard import log_limited
from ...core.routes import set_framework_routes
from ..light_spans import start_span
from ..middleware import chat_turns
from .stainless import cancel_when_imported, when_imported

if TYPE_CHECKING:
    from ...config import Settings
    from ..middleware.extract import RequestInfo

_MAIN = "open_webui.main"
_CHATS = "open_webui.models.chats"
_TASKS = "open_webui.utils.middleware"
_MARK = "__chatobs_original__"
# Open WebUI's generations that run after the reply, in the turn's task (utils/middleware.py imports them by name).
_BACKGROUND = ("generate_title", "generate_chat_tags", "generate_follow_ups")
# Its chat turns, where CHATOBS_CHAT_ROUTES is left at its default: `POST *` would make a trace of every sign-in,
# settings change and upload. The OpenAI-compatible path is the same endpoint, under /api/v1.
CHAT_ROUTES = ("POST /api/chat/completions", "POST /api/v1/chat/completions")
_MAX_TOKEN = 8192  # a longer "token" is not a session JWT: not decoded (a bound on what a header can cost)

OPENWEBUI_TASK = "openwebui.task"

_propagate_identity = True
_max_id = 256
_stream_usage = True


def instrument(settings: Settings) -> bool:
    """Patch Open WebUI when (or as soon as) ``open_webui.main`` is imported; ``init()`` never imports it."""
    global _propagate_identity, _max_id, _stream_usage
    _propagate_identity = settings.propagate_identity
    _max_id = settings.max_id_length
    _stream_usage = settings.openai_stream_usage
    when_imported(_MAIN, _patch_main)
    return True


def uninstrument() -> None:
    cancel_when_imported(_MAIN)
    set_framework_routes(None)
    main, chats, tasks = (sys.modules.get(m) for m in (_MAIN, _CHATS, _TASKS))
    if main is not None:
        _restore(main, "process_chat_payload")
    if chats is not None:
        for name in ("insert_new_chat", "insert_chat_turn"):
            _restore(chats.ChatTable, name)
    if tasks is not None:
        for name in _BACKGROUND:
            _restore(tasks, name)
    # The middleware stays on the app: Starlette cannot remove one, and it is a pass-through once chatobs is off.


def _restore(owner: Any, name: str) -> None:
    original = getattr(getattr(owner, name, None), _MARK, None)
    if original is not None:
        setattr(owner, name, original)


def _patch_main(main: Any) -> None:
    from ..middleware.asgi import ChatObsMiddleware

    set_framework_routes(CHAT_ROUTES)
    app = main.app
    if not any(getattr(m, "cls", None) is ChatObsMiddleware for m in app.user_middleware):
        try:
            # Outermost, so the request span covers Open WebUI's own middleware and its socket.io mount (/ws).
            app.add_middleware(ChatObsMiddleware, extractors=[identity_from_request])
        except RuntimeError as exc:  # the app already started: it cannot take a middleware any more
            log_limited("openwebui-app", "chatobs: could not add the middleware to Open WebUI: %s", exc)
    _wrap(main, "process_chat_payload", _turn_task)
    chats = sys.modules.get(_CHATS)
    if chats is not None:
        _wrap(chats.ChatTable, "insert_new_chat", _new_chat)
        _wrap(chats.ChatTable, "insert_chat_turn", _chat_turn)
    tasks = sys.modules.get(_TASKS)
    if tasks is not None:
        for name in _BACKGROUND:
            _wrap(tasks, name, _background(name.removeprefix("generate_")))


def _wrap(owner: Any, name: str, make: Any) -> None:
    original = getattr(owner, name, None)
    if original is None or hasattr(original, _MARK):
        return
    wrapper = make(original)
    setattr(wrapper, _MARK, original)
    setattr(owner, name, wrapper)


# --- identity ------------------------------------------------------------------------------------------------------
def _text(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        if value and len(value) <= _max_id and value.isprintable():
            return value
    return None


def _session_token(info: RequestInfo) -> str | None:
    """Open WebUI's session token, where Open WebUI itself looks: the bearer header, else the ``token`` cookie."""
    auth = info.header("authorization")
    if auth:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    raw = info.header("cookie")
    if raw:
        try:
            morsel = SimpleCookie(raw).get("token")
        except CookieError:
            return None
        if morsel is not None and morsel.value:
            return morsel.value
    return None


def user_from_token(token: str | None) -> str | None:
    """The user ID of an Open WebUI session JWT, verified by Open WebUI's ``decode_token``; API keys (``sk-``) and
    anything it rejects give ``None``."""
    if not token or token.startswith("sk-") or len(token) > _MAX_TOKEN or token.count(".") != 2:
        return None
    auth = sys.modules.get("open_webui.utils.auth")
    if auth is None:
        return None
    claims = auth.decode_token(token)
    return _text(claims.get("id")) if isinstance(claims, Mapping) else None


def identity_from_request(info: RequestInfo) -> dict[str, str]:
    """The middleware's extractor: chat and message IDs from the JSON body (when it was small enough to read), the
    user from the session token. Only for requests that carry a body: a page load or a poll is not a turn."""
    if info.method not in ("POST", "PUT", "PATCH"):
        return {}
    out: dict[str, str] = {}
    body = info.body
    if isinstance(body, Mapping):
        for key, value in (("conversation_id", body.get("chat_id")), ("message_id", body.get("id"))):
            if (v := _text(value)) is not None:
                out[key] = v
        user_message = body.get("user_message")
        if isinstance(user_message, Mapping) and (v := _text(user_message.get("id"))) is not None:
            out["parent_message_id"] = v
    user = user_from_token(_session_token(info))
    if user is not None:
        out["user_id"] = user
    return out


def _enter(**ids: str | None) -> None:
    """Refine the current scope with ``ids`` for the rest of this task (and what it starts from now on), and label
    the request span if it is still open. Not detached: the task's context ends with the task, and the middleware's
    own detach restores what the request started with."""
    found = {k: v for k, v in ids.items() if v}
    if not found:
        return
    base = current() or ChatScope()
    s = replace(base, **found)  # type: ignore[arg-type]  # only the str identity fields are passed
    if s == base:
        return
    span = request_span()
    if span.is_recording():
        span.set_attributes(identity_attributes(s))
        if s.conversation_id != base.conversation_id:  # a first turn: its socket events now find the chat
            chat_turns.remember(s, span.get_span_context())
    otel_context.attach(context_with_scope(s, propagate_identity=_propagate_identity))


def _guarded_enter(where: str, **ids: Any) -> None:
    try:
        _enter(**{k: _text(v) for k, v in ids.items()})
    except Exception as exc:  # noqa: BLE001 - never hurt the host app
        log_limited(
            f"openwebui-{where}", "chatobs: could not read Open WebUI's %s: %s: %s", where, type(exc).__name__, exc
        )


def _new_chat(original: Any) -> Any:
    @functools.wraps(original)
    async def insert_new_chat(self: Any, id: str, user_id: str, form_data: Any, *args: Any, **kwargs: Any) -> Any:
        result = await original(self, id, user_id, form_data, *args, **kwargs)
        if result is not None:
            chat = getattr(form_data, "chat", None) or {}
            history = (chat.get("history") or {}) if isinstance(chat, Mapping) else {}
            current_id = history.get("currentId")
            parent = ((history.get("messages") or {}).get(current_id) or {}).get("parentId") if current_id else None
            _guarded_enter(
                "new chat", conversation_id=id, user_id=user_id, message_id=current_id, parent_message_id=parent
            )
        return result

    return insert_new_chat


def _chat_turn(original: Any) -> Any:
    @functools.wraps(original)
    async def insert_chat_turn(self: Any, chat_id: str, user: Any, user_message: Any, message_ids: Any) -> Any:
        result = await original(self, chat_id, user, user_message, message_ids)
        first = message_ids[0] if isinstance(message_ids, list) and message_ids else {}
        _guarded_enter(
            "chat turn",
            conversation_id=chat_id,
            user_id=getattr(user, "id", None),
            message_id=first.get("message_id") if isinstance(first, Mapping) else None,
            parent_message_id=user_message.get("id") if isinstance(user_message, Mapping) else None,
        )
        return result

    return insert_chat_turn


def _turn_task(original: Any) -> Any:
    @functools.wraps(original)
    async def process_chat_payload(
        request: Any, form_data: Any, user: Any, metadata: Any, *args: Any, **kwargs: Any
    ) -> Any:
        if isinstance(metadata, Mapping):
            _guarded_enter(
                "turn",
                conversation_id=metadata.get("chat_id"),
                user_id=metadata.get("user_id") or getattr(user, "id", None),
                message_id=metadata.get("message_id"),
                parent_message_id=metadata.get("user_message_id"),
            )
        result = await original(request, form_data, user, metadata, *args, **kwargs)
        if _stream_usage:
            model = args[0] if args else kwargs.get("model")
            _ask_usage(result[0] if isinstance(result, tuple) and result else None, model)
        return result

    return process_chat_payload


def _ask_usage(form_data: Any, model: Any) -> None:
    """Ask an OpenAI connection for token usage on a streamed reply, as Open WebUI itself does for a model given the
    ``usage`` capability (its stream reader takes the usage-only chunk): without it a streamed turn has no tokens."""
    if not isinstance(form_data, dict) or not form_data.get("stream"):
        return
    if not isinstance(model, Mapping) or model.get("owned_by") != "openai":
        return
    current = form_data.get("stream_options")
    if current is None or (isinstance(current, dict) and "include_usage" not in current):
        form_data["stream_options"] = {**(current or {}), "include_usage": True}


def _background(task: str) -> Any:
    def make(original: Any) -> Any:
        @functools.wraps(original)
        async def generate(*args: Any, **kwargs: Any) -> Any:
            try:
                span = start_span(f"openwebui {task}", attributes={OPENWEBUI_TASK: task})
            except Exception as exc:  # noqa: BLE001 - run it untraced
                log_limited("openwebui-task", "chatobs: could not trace an Open WebUI task: %s", exc)
                return await original(*args, **kwargs)
            with trace.use_span(span, end_on_exit=True):
                return await original(*args, **kwargs)

        return generate

    return make
