"""The demo's own logic without processes: conversation history (edit, regenerate, bounds), request validation,
configuration from the environment, streamed tool-call assembly."""

from __future__ import annotations

import pytest

from demo_app import api, settings
from demo_app.chat import _StreamedMessage, describe_llm_error
from demo_app.history import ConversationStore, TurnRejected
from demo_app.tools import parse_arguments


def roles_and_text(store: ConversationStore, cid: str, user: str = "u") -> list[tuple[str, str]]:
    conv = store.get(cid, user)
    assert conv is not None
    return [(m.role, m.content) for m in conv.messages]


def test_history_is_sent_each_turn_and_failed_answers_are_left_out() -> None:
    store = ConversationStore()
    t1 = store.begin("c", "u", "hi", "send", None)
    assert [m["role"] for m in t1.llm_messages] == ["system", "user"]
    store.finish(t1, "You said: hi", "t1", [])
    t2 = store.begin("c", "u", "error", "send", None)
    store.finish(t2, "", "t2", [], error="429")
    t3 = store.begin("c", "u", "again", "send", None)
    assert [(m["role"], m["content"]) for m in t3.llm_messages[1:]] == [
        ("user", "hi"),
        ("assistant", "You said: hi"),
        ("user", "error"),
        ("user", "again"),
    ]


def test_edit_replaces_the_last_user_message_and_drops_its_answer() -> None:
    store = ConversationStore()
    t = store.begin("c", "u", "hello", "send", "m1")
    store.finish(t, "You said: hello", "t1", [])
    t = store.begin("c", "u", "hello again", "edit", "m2")
    assert t.replaced_message_id == "m1" and t.user_message.id == "m2"
    assert roles_and_text(store, "c") == [("user", "hello again")]
    assert t.llm_messages[-1] == {"role": "user", "content": "hello again"}


def test_regenerate_answers_the_same_message_again() -> None:
    store = ConversationStore()
    t = store.begin("c", "u", "hello", "send", "m1")
    answer = store.finish(t, "You said: hello", "t1", [])
    t = store.begin("c", "u", "", "regenerate", "ignored")
    assert t.user_message.id == "m1" and t.replaced_message_id == answer.id
    assert roles_and_text(store, "c") == [("user", "hello")]


def test_turns_that_cannot_start_are_rejected_with_a_status() -> None:
    store = ConversationStore()
    with pytest.raises(TurnRejected) as exc:
        store.begin("nope", "u", "", "regenerate", None)
    assert exc.value.status == 404
    store.begin("c", "owner", "hi", "send", None)
    with pytest.raises(TurnRejected) as exc:
        store.begin("c", "intruder", "hi", "send", None)
    assert exc.value.status == 403


def test_store_is_bounded() -> None:
    store = ConversationStore(max_conversations=3, max_messages=4)
    for i in range(5):
        store.begin(f"c{i}", "u", "x", "send", None)
    assert [c["id"] for c in store.list("u")] == ["c4", "c3", "c2"]
    for i in range(6):
        t = store.begin("c4", "u", f"m{i}", "send", None)
        store.finish(t, f"a{i}", None, [])
    assert len(store.get("c4", "u").messages) <= 5  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "headers", "field"),
    [
        ([], {}, "body"),
        ({"message": 3}, {}, "message"),
        ({"message": " "}, {}, "message"),
        ({"message": "x" * (api.MAX_MESSAGE_CHARS + 1)}, {}, "message"),
        ({"message": "hi", "action": "undo"}, {}, "action"),
        ({"message": "hi", "conversation_id": "../etc"}, {}, "conversation_id"),
        ({"message": "hi"}, {"x-user-id": "a b"}, "X-User-Id"),
    ],
)
def test_bad_chat_requests_name_the_field(body: object, headers: dict[str, str], field: str) -> None:
    with pytest.raises(api.BadRequest) as exc:
        api.parse_chat_request(body, headers)
    assert str(exc.value).startswith(field)


def test_good_chat_request() -> None:
    req = api.parse_chat_request({"action": "regenerate", "conversation_id": "c-1"}, {"x-user-id": "alice"})
    assert (req.user_id, req.action, req.conversation_id, req.message) == ("alice", "regenerate", "c-1", "")
    assert api.parse_chat_request({"message": "hi"}, {}).user_id == api.DEFAULT_USER


def test_config_fake_unless_a_key_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DEMO_MODEL", "DEMO_LLM_TIMEOUT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://ignored-without-a-key")
    cfg = settings.from_env()
    assert cfg.fake and cfg.base_url is None and cfg.model == settings.DEFAULT_MODEL
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("DEMO_MODEL", "my-model")
    cfg = settings.from_env(port=9000)
    assert not cfg.fake and cfg.api_key == "sk-test" and cfg.base_url == "http://ignored-without-a-key"
    assert cfg.model == "my-model" and cfg.port == 9000
    monkeypatch.setenv("DEMO_LLM_TIMEOUT", "soon")
    with pytest.raises(settings.DemoConfigError, match="DEMO_LLM_TIMEOUT='soon'"):
        settings.from_env()


def test_streamed_tool_calls_are_assembled() -> None:
    from openai.types.chat import ChatCompletionChunk

    def chunk(delta: dict) -> ChatCompletionChunk:
        return ChatCompletionChunk.model_validate(
            {
                "id": "x",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
        )

    acc = _StreamedMessage()
    acc.add(
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "calc", "arguments": '{"expr'},
                    }
                ]
            }
        )
    )
    acc.add(chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ession": "1+1"}'}}]}))
    assert acc.add(chunk({"content": "ok"})) == "ok"
    assert acc.tool_calls() == [{"id": "call_1", "name": "calc", "arguments": '{"expression": "1+1"}'}]
    assert parse_arguments(acc.tool_calls()[0]["arguments"]) == {"expression": "1+1"}
    with pytest.raises(ValueError, match="JSON object"):
        parse_arguments("[1]")


def test_llm_errors_become_readable_failed_turns() -> None:
    import httpx
    import openai

    response = httpx.Response(429, request=httpx.Request("POST", "http://x"))
    failed = describe_llm_error(openai.RateLimitError("slow down", response=response, body=None))
    assert failed.error_type == "RateLimitError" and "429" in str(failed)
    failed = describe_llm_error(openai.APIConnectionError(request=httpx.Request("POST", "http://x")))
    assert "could not be reached" in str(failed)


def test_provider_url_shown_without_credentials() -> None:
    from demo_app.web import without_userinfo

    assert without_userinfo("https://user:secret@llm.example:8443/v1") == "https://llm.example:8443/v1"
    assert without_userinfo("https://api.openai.com/v1") == "https://api.openai.com/v1"
