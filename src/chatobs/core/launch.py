"""Starting the agent for a configuration when none answers: once per host, however many workers try at once.

Called from the hand-off's sender thread (never the request path). The starter takes ``<socket>.lock`` with
``fcntl.flock``; whoever holds it checks the socket again, starts ``python -m chatobs.runtime.agent`` detached and waits until
it answers. Detached means: started through a short-lived intermediate process (so the agent is nobody's child and
no worker has to reap it), in its own session, stdin from /dev/null and output to ``<socket>.log`` -- never the app's
terminal -- so it outlives a worker restart and a Ctrl-C in the app's terminal.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["answers", "ensure_agent", "pid_file"]

_START_TIMEOUT_S = 30.0  # importing the exporters (and Presidio) takes seconds on a loaded machine


def answers(path: Path, timeout_s: float = 0.5) -> bool:
    """Does something accept connections on this socket?"""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pid_file(path: Path) -> Path:
    return path.with_name(path.name + ".pid")


def _spawn(path: Path, env: dict[str, str], idle_exit_s: float) -> None:
    env = dict(env)
    # The agent must import this very chatobs (a worktree, an unpacked app), not whatever else is on the path.
    pkg_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([pkg_root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    args = [sys.executable, "-m", "chatobs.runtime.agent", "--socket", str(path), "--idle-exit", str(idle_exit_s)]
    log = str(path.with_name(path.name + ".log"))
    trampoline = (
        "import subprocess,sys,os\n"
        "log=os.open(sys.argv[1],os.O_WRONLY|os.O_CREAT|os.O_APPEND,0o600)\n"
        "subprocess.Popen(sys.argv[2:],stdin=subprocess.DEVNULL,stdout=log,stderr=log,start_new_session=True,cwd='/',close_fds=True)\n"
    )
    subprocess.run(
        [sys.executable, "-c", trampoline, log, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        timeout=30,
        check=False,
    )


def ensure_agent(path: Path, env: dict[str, str], *, idle_exit_s: float, timeout_s: float = _START_TIMEOUT_S) -> bool:
    """True when an agent answers on ``path`` (started here if need be) within ``timeout_s``."""
    if answers(path):
        return True
    deadline = time.monotonic() + timeout_s
    fd = os.open(str(path.with_name(path.name + ".lock")), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return answers(path)
                time.sleep(0.05)
        # Another process may have started it while we waited for the lock.
        if answers(path):
            return True
        _spawn(path, env, idle_exit_s)
        while time.monotonic() < deadline:
            if answers(path):
                return True
            time.sleep(0.05)
        return False
    finally:
        os.close(fd)  # releases the lock
