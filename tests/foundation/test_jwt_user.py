"""``CHATOBS_USER_JWT_CLAIM``: the user ID from a bearer JWT's claim, read without verification, to label spans only.
A real Starlette app with the middleware, tokens made with PyJWT."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import chatobs
from chatobs.config import Settings
from chatobs.core import semconv as sc


def _app() -> Starlette:
    async def chat(request: Any) -> PlainTextResponse:
        s = chatobs.current()
        return PlainTextResponse((s.user_id if s else None) or "-")

    app = Starlette(routes=[Route("/api/chat", chat, methods=["POST"])])
    app.add_middleware(chatobs.ChatObsMiddleware)
    return app


async def _user(headers: dict[str, str]) -> str:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t") as c:
        return (await c.post("/api/chat", json={}, headers=headers)).text


async def test_claim_labels_the_user(make_capture) -> None:
    cap = make_capture(user_jwt_claim="sub")
    token = jwt.encode(
        {"sub": "alice", "email": "a@example.com"}, "the-app-knows-this-key-of-32-chars", algorithm="HS256"
    )
    assert await _user({"Authorization": f"Bearer {token}"}) == "alice"
    (span,) = [s for s in cap.spans() if s.attributes.get(sc.CHAT_REQUEST)]
    assert span.attributes[sc.USER_ID] == "alice"


async def test_header_wins_and_other_claims_work(make_capture) -> None:
    make_capture(user_jwt_claim="email")
    token = jwt.encode({"sub": "alice", "email": "a@example.com"}, "k" * 32, algorithm="HS256")
    assert await _user({"Authorization": f"Bearer {token}"}) == "a@example.com"
    assert await _user({"Authorization": f"Bearer {token}", "X-User-Id": "from-header"}) == "from-header"


@pytest.mark.parametrize(
    "value",
    [
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "Basic dXNlcjpwdw==",
        "Bearer ",
        "Bearer " + "x" * 9000,
        "Bearer " + jwt.encode({"other": "x"}, "k" * 32, algorithm="HS256"),
        "Bearer " + jwt.encode({"sub": {"nested": 1}}, "k" * 32, algorithm="HS256"),
    ],
)
async def test_bad_tokens_are_ignored(make_capture, value: str) -> None:
    make_capture(user_jwt_claim="sub")
    assert await _user({"Authorization": value}) == "-"


async def test_off_by_default(make_capture) -> None:
    make_capture()
    token = jwt.encode({"sub": "alice"}, "k" * 32, algorithm="HS256")
    assert await _user({"Authorization": f"Bearer {token}"}) == "-"


def test_empty_setting_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATOBS_USER_JWT_CLAIM", "  ")
    assert Settings().user_jwt_claim is None
