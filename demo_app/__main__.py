"""``python -m demo_app`` (``make demo``): the fake LLM provider, the MCP tool server and the chat app, one command.

Starts, in order: the fake OpenAI-compatible provider (its own process; skipped when ``OPENAI_API_KEY`` is set), the
MCP tool server (spawned by the app over stdio, or its own process with ``--mcp-transport http``), then the chat app
in this process. Ctrl-C (or SIGTERM) stops all of them.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from .settings import DemoConfig, DemoConfigError, from_env

logger = logging.getLogger("demo_app")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wait_until(check: Callable[[], bool], what: str, proc: subprocess.Popen[Any], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready")
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} was not ready after {timeout_s:.0f}s")


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own loopback URL
                return bool(response.status == 200)
        except OSError:
            return False

    return check


def _listening(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    return check


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the demo dies without stopping it (kill -9), instead of lingering on its port."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: Ctrl-C and SIGTERM still stop the children
        pass


class Children:
    """The helper processes; stopped (TERM, then KILL) in reverse order however the demo ends."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[Any]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[Any]:
        # Own session: Ctrl-C reaches only this process, which then stops the children in order.
        proc = subprocess.Popen(
            [sys.executable, "-m", *args],
            start_new_session=True,
            env={**os.environ, **(env or {})},
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self.procs.append((name, proc))
        return proc

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for name, proc in reversed(self.procs):
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in 5s; killing it", name)
                proc.kill()
                proc.wait(5)
        self.procs.clear()


def start_helpers(cfg: DemoConfig, children: Children, llm_port: int | None, mcp_port: int | None) -> DemoConfig:
    if cfg.fake:
        port = llm_port or free_port()
        proc = children.start("fake LLM", ["demo_app.fake_llm", "--host", "127.0.0.1", "--port", str(port)])
        _wait_until(_http_ok(f"http://127.0.0.1:{port}/"), "the fake LLM provider", proc)
        cfg = cfg.with_(base_url=f"http://127.0.0.1:{port}/v1")
    if cfg.mcp_transport == "http":
        port = mcp_port or free_port()
        from .web import tool_server_env

        args = ["demo_app.mcp_server", "--transport", "http", "--host", "127.0.0.1", "--port", str(port)]
        proc = children.start("MCP server", args, tool_server_env())
        _wait_until(_listening(port), "the MCP tool server", proc)
        cfg = cfg.with_(mcp_url=f"http://127.0.0.1:{port}/mcp")
    return cfg


def describe(cfg: DemoConfig) -> str:
    from chatobs.runtime.wiring import get_runtime

    rt = get_runtime()
    exporters = ", ".join(f"{s.name} ({s.reason})" for s in rt.exporters) if rt else "none (chatobs disabled)"
    url = f"http://{cfg.host}:{cfg.port}"
    from .web import without_userinfo

    provider = without_userinfo(cfg.base_url or "OpenAI")
    llm = f"fake provider at {cfg.base_url}" if cfg.fake else f"{provider} (OPENAI_API_KEY is set)"
    mcp = "stdio (spawned by the app)" if cfg.mcp_transport == "stdio" else f"streamable HTTP at {cfg.mcp_url}"
    lines = [
        f"chatobs demo ({cfg.framework}) on {url}",
        f"  LLM: {llm}, model {cfg.model}",
        f"  MCP tools: {mcp}",
        f"  traces: {exporters}",
    ]
    if rt and any(s.name == "local" for s in rt.exporters):
        lines.append(f"  trace viewer: {url}/_chatobs/   (local store: {rt.settings.local_db})")
    lines.append("  Ctrl-C stops everything.")
    return "\n".join(lines)


def serve_fastapi(cfg: DemoConfig) -> None:
    import uvicorn

    if cfg.framework == "gradio":
        from .gradio_app import create_app
    else:
        from .fastapi_app import create_app

    app = create_app(cfg, on_ready=lambda: print(describe(cfg), flush=True))
    # uvicorn handles SIGINT/SIGTERM itself: it finishes open requests, runs the lifespan shutdown, then returns.
    uvicorn.Server(uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="warning", lifespan="on")).run()


def serve_flask(cfg: DemoConfig) -> None:
    from werkzeug.serving import make_server

    from .flask_app import create_app

    app = create_app(cfg)
    server = make_server(cfg.host, cfg.port, app, threaded=True)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # Also SIGINT: a shell starts background jobs with SIGINT ignored, and `kill -INT` should still stop the demo.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(describe(cfg), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.extensions["demo_close"]()


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a port number 1-65535") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a port number 1-65535")
    return port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo_app", description="The chatobs demo chat app.")
    parser.add_argument("--framework", choices=["fastapi", "flask", "gradio"], default="fastapi")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=_port, default=8000)
    parser.add_argument(
        "--mcp-transport",
        choices=["stdio", "http"],
        default="stdio",
        help="how the app reaches the MCP tool server (default: stdio, the app spawns it)",
    )
    parser.add_argument(
        "--llm-port", type=_port, default=None, help="port of the fake LLM provider (default: a free one)"
    )
    parser.add_argument("--mcp-port", type=_port, default=None, help="port of the MCP server with --mcp-transport http")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "werkzeug", "mcp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        cfg = from_env(framework=args.framework, host=args.host, port=args.port, mcp_transport=args.mcp_transport)
    except DemoConfigError as exc:
        print(f"python -m demo_app: {exc}", file=sys.stderr)
        return 2
    children = Children()
    try:
        cfg = start_helpers(cfg, children, args.llm_port, args.mcp_port)
        (serve_flask if cfg.framework == "flask" else serve_fastapi)(cfg)
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        print(f"python -m demo_app: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"python -m demo_app: cannot listen on {cfg.host}:{cfg.port}: {exc} (choose another --port)",
            file=sys.stderr,
        )
        return 1
    finally:
        children.stop()
        import chatobs

        chatobs.shutdown()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
