"""Routes of the viewer: the page, its static files, and read-only JSON over the local store."""

from __future__ import annotations

import hmac
import sqlite3
from collections.abc import Callable, MutableMapping
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ...export.local import queries
from ...export.local.store import connect
from .loopback import is_loopback

_COOKIE = "chatobs_viewer_token"
_STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
# The page runs only its own script and never inline code: a prompt that smuggled markup in still could not run.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", _CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def _asset(name: str) -> str:
    return resources.files("chatobs.tools.viewer").joinpath("static", name).read_text(encoding="utf-8")


def _hostname(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class _Guard:
    """Token / loopback check and security headers around the whole app."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    def _allowed(self, scope: Scope) -> tuple[bool, bool]:
        """(allowed, set_cookie)."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.token:
            offered: list[str] = []
            auth = headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                offered.append(auth[7:].strip())
            query = Request(scope).query_params.get("token")
            if query:
                offered.append(query)
            cookie = Request(scope).cookies.get(_COOKIE)
            if cookie:
                offered.append(cookie)
            ok = any(hmac.compare_digest(o.encode(), self.token.encode()) for o in offered)
            return ok, ok and bool(query)
        client = scope.get("client")
        host = _hostname(headers.get("host", ""))
        forwarded = "x-forwarded-for" in headers or "forwarded" in headers
        # Loopback client, a loopback Host (no DNS rebinding), and no proxy in between (a proxy makes everyone local).
        ok = bool(client and is_loopback(client[0]) and is_loopback(host) and not forwarded)
        return ok, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        allowed, set_cookie = self._allowed(scope)
        if not allowed:
            msg = (
                "chatobs viewer: token required (CHATOBS_VIEWER_TOKEN; send ?token=, a cookie or Authorization: Bearer)"
                if self.token
                else "chatobs viewer: only served to this machine; set CHATOBS_VIEWER_TOKEN to allow other clients"
            )
            response = PlainTextResponse(msg, status_code=401 if self.token else 403)
            await response(scope, receive, self._with_headers(send, False, scope))
            return
        await self.app(scope, receive, self._with_headers(send, set_cookie, scope))

    def _with_headers(self, send: Send, set_cookie: bool, scope: Scope) -> Send:
        async def wrapped(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", [])) + _SECURITY_HEADERS
                if set_cookie and self.token:
                    path = (scope.get("root_path") or "") + "/"
                    headers.append(
                        (b"set-cookie", f"{_COOKIE}={self.token}; Path={path}; HttpOnly; SameSite=Strict".encode())
                    )
                message = {**message, "headers": headers}
            await send(message)

        return wrapped


def build_app(db_path: Path, token: str | None) -> ASGIApp:
    def db() -> sqlite3.Connection | None:
        if not db_path.exists():
            return None
        try:
            conn = connect(db_path, readonly=True)
            return conn if queries.has_schema(conn) else None
        except sqlite3.Error:
            return None

    def filters(request: Request) -> queries.Filters:
        q = request.query_params
        status = q.get("status") if q.get("status") in ("ok", "error") else None
        rated = q.get("feedback") if q.get("feedback") in ("any", "negative", "positive", "none") else None
        try:
            since = queries.parse_time(q.get("since"))
            until = queries.parse_time(q.get("until"))
        except ValueError:
            since = until = None
        return queries.Filters(
            conversation=q.get("conversation") or None,
            user=q.get("user") or None,
            model=q.get("model") or None,
            tool=q.get("tool") or None,
            status=status,
            feedback=rated,
            since_ns=since,
            until_ns=until,
        )

    def limit(request: Request, default: int) -> int:
        try:
            return max(1, min(1000, int(request.query_params.get("limit", default))))
        except ValueError:
            return default

    def api(fn: Callable[[sqlite3.Connection, Request], Any], empty: Any) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            conn = db()
            if conn is None:
                return JSONResponse(
                    {"data": empty, "store": str(db_path), "missing": True}, headers={"cache-control": "no-store"}
                )
            try:
                data = fn(conn, request)
            finally:
                conn.close()
            if data is None:
                return JSONResponse({"error": "not found"}, status_code=404)
            return JSONResponse({"data": data, "store": str(db_path)}, headers={"cache-control": "no-store"})

        return endpoint

    def index(request: Request) -> Response:
        if not request.url.path.endswith("/"):
            # Relative URLs in the page (api/..., static/...) need the trailing slash, wherever the app is mounted.
            return RedirectResponse(request.url.replace(path=request.url.path + "/"), status_code=307)
        return Response(
            _asset("index.html"), media_type="text/html; charset=utf-8", headers={"cache-control": "no-store"}
        )

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC:
            return PlainTextResponse("not found", status_code=404)
        return Response(_asset(name), media_type=_STATIC[name])

    routes = [
        Route("/", index),
        Route("/static/{name}", static),
        Route(
            "/api/conversations", api(lambda c, r: queries.list_conversations(c, filters(r), limit=limit(r, 100)), [])
        ),
        Route(
            "/api/conversations/{cid:path}",
            api(
                lambda c, r: {
                    "conversation_id": r.path_params["cid"],
                    "turns": queries.conversation_turns(c, r.path_params["cid"]),
                },
                None,
            ),
        ),
        Route("/api/traces", api(lambda c, r: queries.list_traces(c, filters(r), limit=limit(r, 100)), [])),
        Route("/api/traces/{tid}", api(lambda c, r: queries.get_trace(c, r.path_params["tid"]), None)),
        Route("/api/stats", api(lambda c, r: queries.stats(c, filters(r)), None)),
    ]
    app = Starlette(routes=routes)
    return _Guard(app, token)
