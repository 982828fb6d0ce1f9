"""Framework-independent pieces of the two apps: the static chat page, the page's config, where the MCP server is,
which chatobs settings the demo sets, and mounting chatobs's trace viewer at ``/_chatobs``."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .settings import DEMO_EXCLUDE_PATHS, DemoConfig

logger = logging.getLogger("demo_app")

STATIC = Path(__file__).resolve().parent / "static"
VIEWER_PREFIX = "/_chatobs"
FEEDBACK_PATH = VIEWER_PREFIX + "/feedback"  # chatobs's feedback route; under /_chatobs/*, so never a traced turn
_STATIC_NAMES = {p.name for p in STATIC.iterdir() if p.is_file()} if STATIC.is_dir() else set()


def static_file(name: str) -> Path | None:
    """A file of ``static/`` by exact name (no paths: nothing else on disk is reachable)."""
    return STATIC / name if name in _STATIC_NAMES else None


def chatobs_overrides() -> dict[str, Any]:
    """Settings the demo chooses when the environment does not: a service name, the demo's GET endpoints left out of
    tracing, tool arguments/results recorded (masked like everything else), only the SDKs the demo uses instrumented."""
    overrides: dict[str, Any] = {}
    if not (os.environ.get("OTEL_SERVICE_NAME") or os.environ.get("CHATOBS_SERVICE_NAME")):
        overrides["service_name"] = "chatobs-demo"
    if not os.environ.get("CHATOBS_EXCLUDE_PATHS"):
        overrides["exclude_paths"] = DEMO_EXCLUDE_PATHS.split(",")
    if not (os.environ.get("CHATOBS_CAPTURE_TOOL_IO") or os.environ.get("MCP_TRACE_TOOL_IO")):
        overrides["capture_tool_io"] = True
    if "CHATOBS_INSTRUMENT" not in os.environ:
        # The demo talks to OpenAI-compatible providers only; importing the Anthropic SDK would cost seconds of start.
        overrides["instrument"] = ["openai", "mcp"]
    return overrides


def mcp_target(cfg: DemoConfig) -> Any:
    if cfg.mcp_transport == "http":
        if not cfg.mcp_url:
            raise ValueError("mcp_transport=http needs mcp_url")
        return cfg.mcp_url
    from .tools import stdio_server

    return stdio_server(cfg.mcp_command, {**os.environ, **tool_server_env()})


def tool_server_env() -> dict[str, str]:
    """What the demo sets for the MCP tool server's own chatobs, unless the environment already says."""
    env: dict[str, str] = {}
    if "CHATOBS_INSTRUMENT" not in os.environ:
        # The tool server makes no LLM calls: instrumenting (importing) the LLM SDKs there would only slow its start.
        env["CHATOBS_INSTRUMENT"] = "mcp"
    if not (os.environ.get("CHATOBS_CAPTURE_TOOL_IO") or os.environ.get("MCP_TRACE_TOOL_IO")):
        env["CHATOBS_CAPTURE_TOOL_IO"] = "true"  # as in the app: tool arguments and results on the server's spans too
    return env


def _local_store() -> Any | None:
    """The local store's path when traces go there (the viewer reads it), else None."""
    from chatobs.runtime.wiring import get_runtime

    rt = get_runtime()
    if rt is None or not any(spec.name == "local" for spec in rt.exporters):
        return None
    return rt.settings.local_db


def viewer_app(cfg: DemoConfig) -> Any | None:
    """chatobs's viewer over the local store as an ASGI app, or None when traces go elsewhere. The viewer itself
    serves only loopback clients unless ``CHATOBS_VIEWER_TOKEN`` is set."""
    db = _local_store() if cfg.viewer else None
    if db is None:
        return None
    try:
        from chatobs.tools.viewer import create_app
    except ImportError:
        return None
    try:
        return create_app(db_path=db)
    except Exception as exc:  # noqa: BLE001 - the chat works without the viewer
        logger.warning("trace viewer not mounted: %s", exc)
        return None


def mount_feedback_asgi(app: Any) -> None:
    """chatobs's feedback route for the thumbs beside each reply (before the viewer's mount, which would take it)."""
    import chatobs

    app.add_route(FEEDBACK_PATH, chatobs.feedback_asgi_app, methods=["POST"])


def mount_viewer_asgi(app: Any, cfg: DemoConfig) -> str | None:
    """Mount the viewer into a Starlette/FastAPI app; returns its URL prefix, or None."""
    asgi = viewer_app(cfg)
    if asgi is None:
        return None
    app.mount(VIEWER_PREFIX, asgi)
    return VIEWER_PREFIX


def public_config(cfg: DemoConfig, viewer_url: str | None) -> dict[str, Any]:
    """What the chat page needs to know: where trace links point, and what it is talking to."""
    return {
        "framework": cfg.framework,
        "model": cfg.model,
        "provider": "fake (local, deterministic)" if cfg.fake else without_userinfo(cfg.base_url or "OpenAI"),
        "viewer_url": viewer_url,
        "trace_url": f"{viewer_url}/#/t/{{trace_id}}" if viewer_url else None,
        "feedback_url": FEEDBACK_PATH,
    }


class AsgiUnderWsgi:
    """Serve a small read-only ASGI app (the viewer) from a WSGI app, on the demo's background event loop.

    The response is collected before it is returned: the viewer's pages and JSON are small, and no chat turn goes
    through here. Paths follow Starlette's ``Mount``: ``path`` stays whole, ``root_path`` is the prefix.
    """

    def __init__(self, asgi: Any, prefix: str, loop: Any) -> None:
        self.asgi = asgi
        self.prefix = prefix
        self.loop = loop

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = [
            (k[5:].replace("_", "-").lower().encode("latin-1"), str(v).encode("latin-1"))
            for k, v in environ.items()
            if k.startswith("HTTP_")
        ]
        for key, name in (("CONTENT_TYPE", b"content-type"), ("CONTENT_LENGTH", b"content-length")):
            if environ.get(key):
                headers.append((name, str(environ[key]).encode("latin-1")))
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": environ["REQUEST_METHOD"],
            "scheme": environ.get("wsgi.url_scheme", "http"),
            "path": path,
            "raw_path": path.encode("latin-1"),
            "root_path": self.prefix,
            "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
            "headers": headers,
            "client": (environ.get("REMOTE_ADDR", ""), int(environ.get("REMOTE_PORT") or 0)),
            "server": (environ.get("SERVER_NAME", ""), int(environ.get("SERVER_PORT") or 0)),
        }
        status, out_headers, chunks = self.loop.run(self._call(scope, body), timeout=30)
        from http import HTTPStatus

        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        start_response(f"{status} {reason}", out_headers)
        return [b"".join(chunks)]

    async def _call(self, scope: dict[str, Any], body: bytes) -> tuple[int, list[tuple[str, str]], list[bytes]]:
        sent = False
        result: dict[str, Any] = {"status": 500, "headers": [], "chunks": []}

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                result["status"] = message["status"]
                result["headers"] = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])]
            elif message["type"] == "http.response.body":
                result["chunks"].append(message.get("body", b""))

        await self.asgi(scope, receive, send)
        return result["status"], result["headers"], result["chunks"]


def mount_viewer_wsgi(app: Any, cfg: DemoConfig, loop: Any) -> str | None:
    """Mount the viewer and chatobs's feedback route into a Flask app (in front of its middleware: neither is a chat
    turn). The feedback route is mounted also when traces go to another backend."""
    import chatobs

    feedback = chatobs.feedback_wsgi_app
    asgi = viewer_app(cfg)
    if asgi is None:
        inner_app = app.wsgi_app

        def only_feedback(environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO", "") == FEEDBACK_PATH:
                return feedback(environ, start_response)
            return inner_app(environ, start_response)

        app.wsgi_app = only_feedback
        return None
    viewer = AsgiUnderWsgi(asgi, VIEWER_PREFIX, loop)
    inner = app.wsgi_app

    def dispatch(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == FEEDBACK_PATH:
            return feedback(environ, start_response)
        if path == VIEWER_PREFIX or path.startswith(VIEWER_PREFIX + "/"):
            return viewer(environ, start_response)
        return inner(environ, start_response)

    app.wsgi_app = dispatch
    return VIEWER_PREFIX


def without_userinfo(url: str) -> str:
    """A URL fit to show on the page: credentials someone put in OPENAI_BASE_URL are dropped."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
