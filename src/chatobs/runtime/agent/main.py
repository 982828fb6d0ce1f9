"""Run the agent: build the pipeline from this process's settings, serve the socket, exit when idle or on SIGTERM.

SIGTERM (and SIGINT): stop accepting, let the connections hand over what they are sending, then drain the pipeline and
flush every exporter within ``CHATOBS_SHUTDOWN_TIMEOUT``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "print_status", "run"]

logger = logging.getLogger("chatobs.agent")

_DRAIN_S = 0.5  # after the listener closes, how long connections get to deliver frames already on their way


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="chatobs agent", description="run the chatobs agent in the foreground (docs/agent.md)"
    )
    p.add_argument(
        "--socket", help="socket path (default: agent.sock in CHATOBS_AGENT_DIR, the one CHATOBS_AGENT=connect uses)"
    )
    p.add_argument(
        "--idle-exit",
        type=float,
        default=0.0,
        help="exit after this many seconds without connected processes (default 0: never)",
    )
    p.add_argument("--status", action="store_true", help="ask the running agent for its status and print it")
    p.add_argument("--json", action="store_true", help="with --status: machine-readable output")
    return p


def default_socket() -> Path:
    from ...config import load_settings
    from ...core import sockdir

    settings = load_settings()
    return sockdir.socket_path(sockdir.checked_dir(settings.agent_dir), None)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ...config import ConfigError
    from ...core.sockdir import AgentDirError

    try:
        path = Path(args.socket) if args.socket else default_socket()
    except (ConfigError, AgentDirError) as exc:
        print(f"chatobs agent: {exc}", file=sys.stderr)
        return 2
    if args.status:
        # Without --socket: every agent in the directory (the user-run one and those started for a configuration).
        paths = [path] if args.socket else sorted(path.parent.glob("agent*.sock"))
        if not paths:
            print(f"chatobs agent: no agent socket in {path.parent}", file=sys.stderr)
            return 1
        return max(print_status(p, as_json=args.json) for p in paths)
    return run(path, idle_exit_s=args.idle_exit)


def print_status(path: Path, *, as_json: bool = False) -> int:
    from ...core import wire
    from ...core.client import AgentUnavailable, request

    try:
        _kind, status = request(path, wire.STATUS)
    except AgentUnavailable as exc:
        print(f"chatobs agent: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(status, indent=2, default=str))
    else:
        print("\n".join(describe(status)))
    return 0


def describe(status: dict[str, Any]) -> list[str]:
    """Human-readable lines of an agent status (also used by ``chatobs doctor``)."""
    lines = [
        f"agent pid {status['pid']} (chatobs {status['version']}), up {status['uptime_s']:.0f}s, socket {status['socket']}",
        f"pipeline queue: {status['pipeline_queue']} spans; received {status['stats']['received']}",
    ]
    clients = status.get("clients") or []
    lines.append(f"connected processes: {len(clients)}")
    for c in clients:
        lines.append(f"  pid {c['pid']} {c['service']}: {c['spans']} spans in {c['batches']} batches")
    for e in status.get("exporters") or []:
        state = "degraded: " + str(e["last_error"]) if e["degraded"] else "ok"
        lines.append(f"exporter {e['name']}: {state}, {e['pending']} queued")
    dropped = status["stats"].get("dropped") or {}
    lines.append("drops: " + (", ".join(f"{k}={v}" for k, v in sorted(dropped.items())) or "none"))
    m = status.get("masking") or {}
    lines.append(f"masking: {m.get('engine')} ({m.get('backend', 'none')}); failures {m.get('failures') or 'none'}")
    if status.get("prometheus_port"):
        lines.append(f"prometheus: http://127.0.0.1:{status['prometheus_port']}/metrics")
    return lines


def _prebuild_masking(settings: Any) -> None:
    """Build Presidio the way the masking worker does: pattern mode without spaCy (~80 MB less). The agent runs no
    app code, so nothing else here needs the real spaCy; the thread backend then finds this engine in the cache."""
    if settings.pii_mode == "off":
        return
    try:
        from ...processing.masking.worker import build_engine
        from ...processing.pii.engine import config_from_settings

        build_engine(config_from_settings(settings))
    except Exception as exc:  # noqa: BLE001 - masking then fails closed and doctor says why
        logger.warning("chatobs agent: masking engine not built at start: %s", type(exc).__name__)


def _lower_priority(nice: int) -> None:
    """Niceness at least ``nice``, before any thread starts (Linux keeps it per thread; new threads inherit it)."""
    if nice <= 0:
        return
    try:
        current = os.getpriority(os.PRIO_PROCESS, 0)
        if current < nice:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:
        logger.warning("chatobs agent: could not lower its priority (CHATOBS_AGENT_NICE=%d): %s", nice, exc)


def run(path: Path, *, idle_exit_s: float = 0.0) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from ...config import ConfigError, load_settings
    from ...core.launch import pid_file
    from .. import wiring as runtime
    from .server import AgentServer

    try:
        # Presidio runs here, on the agent's own thread: the agent is the process that keeps it off the apps' GIL.
        settings = load_settings(masking_worker="thread")
        _lower_priority(settings.agent_nice)
        if settings.debug:
            logging.getLogger("chatobs").setLevel(logging.DEBUG)
        _prebuild_masking(settings)
        rt = runtime.start_headless(settings)
    except ConfigError as exc:
        logger.error("chatobs agent: %s", exc)
        return 2
    try:
        server = AgentServer(path, rt)
    except (OSError, RuntimeError) as exc:
        logger.error("chatobs agent: cannot serve %s: %s", path, exc)
        runtime.shutdown(1.0)
        return 1
    pid_path = pid_file(path)
    pid_path.write_text(f"{os.getpid()}\n")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    serving = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="chatobs-agent-accept", daemon=True
    )
    serving.start()
    logger.info(
        "chatobs agent %d serving %s; exporters %s",
        os.getpid(),
        path,
        ", ".join(f"{s.name} ({s.reason})" for s in rt.exporters) or "none",
    )
    while not stop.wait(1.0):
        if idle_exit_s > 0 and server.idle_for() > idle_exit_s:
            logger.info("chatobs agent: no process connected for %.0fs; exiting", idle_exit_s)
            break
    started = time.monotonic()
    server.shutdown()
    server.server_close()
    try:
        if pid_path.read_text().strip() == str(os.getpid()):
            pid_path.unlink()
        path.unlink(missing_ok=True)
    except OSError:
        pass
    time.sleep(_DRAIN_S if server.clients else 0)
    runtime.shutdown(settings.shutdown_timeout_s)
    logger.info("chatobs agent: stopped in %.2fs", time.monotonic() - started)
    return 0
