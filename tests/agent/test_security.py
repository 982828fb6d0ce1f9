"""The socket directory is private and the agent talks only to its own user."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import chatobs
from chatobs.config import load_settings
from chatobs.core import sockdir, wire
from chatobs.core.stats import STATS
from chatobs.runtime import wiring as runtime
from chatobs.runtime.agent.server import AgentServer
from tests.conftest import subprocess_env


def test_a_missing_directory_is_created_private(tmp_path: Path) -> None:
    d = sockdir.checked_dir(tmp_path / "new")
    assert oct(d.stat().st_mode & 0o777) == "0o700"


def test_group_or_other_permissions_are_refused_with_the_fix(tmp_path: Path) -> None:
    d = tmp_path / "open"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    with pytest.raises(sockdir.AgentDirError, match=rf"CHATOBS_AGENT_DIR={d}: has mode 0755.*chmod 700 {d}"):
        sockdir.checked_dir(d)


@pytest.mark.skipif(os.getuid() != 0, reason="giving a directory to another user needs root")
def test_another_owner_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "theirs"
    d.mkdir(mode=0o700)
    os.chown(d, 65534, 65534)
    with pytest.raises(sockdir.AgentDirError, match="belongs to uid 65534, not to this user"):
        sockdir.checked_dir(d)


def test_a_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(sockdir.AgentDirError, match="is not a directory"):
        sockdir.checked_dir(link)


def test_a_socket_path_too_long_is_refused(tmp_path: Path) -> None:
    with pytest.raises(sockdir.AgentDirError, match="longer than 107 bytes"):
        sockdir.socket_path(tmp_path / ("x" * 100), "abc")


def test_the_app_runs_with_spans_dropped_and_counted_when_the_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    d = tmp_path / "open"
    d.mkdir()
    d.chmod(0o777)
    monkeypatch.setenv("CHATOBS_AGENT", "auto")
    monkeypatch.setenv("CHATOBS_AGENT_DIR", str(d))
    before = STATS.dropped[("handoff", "agent_dir_refused")]
    with caplog.at_level(logging.WARNING, logger="chatobs"):
        rt = chatobs.init(exporters="none")
    assert rt is not None
    assert "chmod 700" in caplog.text and "spans are dropped" in caplog.text
    with runtime.get_tracer().start_as_current_span("work"):
        pass
    assert STATS.dropped[("handoff", "agent_dir_refused")] == before + 1
    assert not list(d.iterdir())  # no socket, no agent


def test_the_agent_refuses_a_process_of_another_user(tmp_path: Path) -> None:
    """The peer-credential check, with a real second user: a child that drops to uid 65534 connects."""
    if os.getuid() != 0:
        pytest.skip("switching to another user needs root")
    rt = runtime.start_headless(load_settings(exporters="none", pii="off", metrics=False, alerts=False))
    # A directory the other user may enter (only for this test): the check under test is the socket's own.
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="co-peer-", dir="/tmp"))  # /tmp itself: pytest's tmp_path is root-only
    d.chmod(0o711)
    path = d / "agent.sock"
    server = AgentServer(path, rt)
    path.chmod(0o777)
    import threading

    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        before = STATS.events["agent_refused_peer"]
        child = f"""
import os, socket, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2] / "src")!r})
from chatobs.core import wire
os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.settimeout(5)
s.connect({str(path)!r})
try:
    s.sendall(wire.encode_frame(wire.STATUS, None))
    print("closed" if s.recv(100) == b"" else "answered")
except (BrokenPipeError, ConnectionResetError):  # closed before or with our request unread
    print("closed")
"""
        out = subprocess.run(
            [sys.executable, "-c", child], env=subprocess_env(), capture_output=True, text=True, timeout=30
        )
        assert out.stdout.strip() == "closed", out.stderr
        assert STATS.events["agent_refused_peer"] == before + 1
        # The same request from this user is answered.
        from chatobs.core.client import request

        kind, status = request(path, wire.STATUS)
        assert kind == wire.STATUS_REPLY and status["pid"] == os.getpid()
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(d, ignore_errors=True)


def test_peer_uid_reads_the_kernel_credentials() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        assert wire.peer_uid(a) == os.getuid() and wire.peer_pid(a) == os.getpid()
    finally:
        a.close()
        b.close()
