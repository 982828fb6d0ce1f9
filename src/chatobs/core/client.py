"""One request to the agent on a short-lived connection: status for ``chatobs doctor`` and ``chatobs agent --status``,
the Prometheus text for the route an app mounts. Separate from the hand-off connection so a slow answer never holds up
spans, and usable from processes that do not send any."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from . import wire

__all__ = ["AgentUnavailable", "request"]


class AgentUnavailable(OSError):
    """No agent answered on the socket (not running, another user's, or too slow)."""


def request(path: Path, kind: int, payload: Any = None, *, timeout_s: float = 2.0) -> tuple[int, Any]:
    deadline = time.monotonic() + timeout_s
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        try:
            s.connect(str(path))
        except OSError as exc:
            raise AgentUnavailable(f"no agent answers on {path}: {exc.strerror or exc}") from None
        import os

        if wire.peer_uid(s) != os.getuid():
            raise AgentUnavailable(f"the process on {path} belongs to another user; not talking to it")
        s.sendall(wire.encode_frame(kind, payload))
        reader = wire.FrameReader()
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = s.recv(65536)
            except TimeoutError:
                raise AgentUnavailable(f"the agent on {path} did not answer within {timeout_s:g}s") from None
            if not data:
                raise AgentUnavailable(f"the agent on {path} closed the connection")
            for frame in reader.feed(data):
                return frame
    finally:
        s.close()
