"""Starting the chat app (uvicorn or gunicorn) in subprocesses, finding the agents of a socket directory, reading
the local store."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

import chatobs.core.wire as wire
from chatobs.core.client import AgentUnavailable, request
from tests.conftest import PYTHON, REPO, subprocess_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def agent_pids(directory: str | Path) -> list[int]:
    """PIDs of the live agents that wrote a pid file in ``directory``."""
    pids = []
    for f in Path(directory).glob("*.pid"):
        try:
            pid = int(f.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            continue
        pids.append(pid)
    return pids


def agent_sockets(directory: str | Path) -> list[Path]:
    return sorted(Path(directory).glob("agent*.sock"))


def agent_status(directory: str | Path) -> dict[str, Any]:
    socks = agent_sockets(directory)
    assert len(socks) == 1, socks
    _kind, status = request(socks[0], wire.STATUS, timeout_s=5)
    return status


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def count_spans(db: Path, where: str = "1=1") -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM spans WHERE {where}").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


class Server:
    """``uvicorn`` or ``gunicorn -k uvicorn.workers.UvicornWorker`` serving tests/agent/chat_app.py."""

    def __init__(
        self, db: Path, *, gunicorn: bool = False, workers: int = 1, preload: bool = False, **env: str
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = "tests.agent.chat_app:app"
        if gunicorn:
            args = [
                PYTHON,
                "-m",
                "gunicorn",
                "-k",
                "uvicorn.workers.UvicornWorker",
                "-w",
                str(workers),
                "-b",
                f"127.0.0.1:{self.port}",
                "--graceful-timeout",
                "20",
                *(["--preload"] if preload else []),
                app,
            ]
        else:
            args = [
                PYTHON,
                "-m",
                "uvicorn",
                app,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ]
        full_env = subprocess_env(CHATOBS_LOCAL_DB=str(db), CHATOBS_EXPORT_INTERVAL_MS="50", **env)
        self.proc = subprocess.Popen(
            args, cwd=str(REPO), env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited: {self.proc.stdout.read().decode(errors='replace') if self.proc.stdout else ''}"
                )
            try:
                if self.client.get("/pid").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start")

    def chat(self, message: str, conversation_id: str = "c1", user: str = "u1") -> httpx.Response:
        return self.client.post(
            "/api/chat", json={"message": message, "conversation_id": conversation_id}, headers={"x-user-id": user}
        )

    def stop(self, timeout: float = 30) -> str:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""


__all__ = [
    "AgentUnavailable",
    "Server",
    "agent_pids",
    "agent_sockets",
    "agent_status",
    "count_spans",
    "free_port",
    "wait_for",
]
