"""The agent's part of ``chatobs doctor``: where the pipeline runs for these settings and, if an agent runs, its
status (pid, uptime, connected processes, queue depths, drops by reason, exporters, masking)."""

from __future__ import annotations

from typing import Any

__all__ = ["agent_report"]


def agent_report(settings: Any) -> tuple[dict[str, Any], list[str]]:
    """(machine-readable, human lines) for the agent these settings use."""
    from ...core import sockdir, wire
    from ...core.client import AgentUnavailable, request
    from .main import describe

    mode = settings.agent
    if mode == "inprocess":
        return {"mode": mode}, ["CHATOBS_AGENT=inprocess: the pipeline runs inside each app process"]
    try:
        directory = sockdir.checked_dir(settings.agent_dir)
        path = sockdir.socket_path(directory, sockdir.settings_key(settings) if mode == "auto" else None)
    except (sockdir.AgentDirError, OSError) as exc:
        return {"mode": mode, "error": str(exc)}, [
            f"REFUSED: {exc}",
            "  apps drop (and count) their spans until this is fixed",
        ]
    try:
        _kind, status = request(path, wire.STATUS)
    except AgentUnavailable as exc:
        hint = "the first app process starts it" if mode == "auto" else "start it: `chatobs agent` (sidecar, systemd)"
        return {"mode": mode, "socket": str(path), "running": False, "detail": str(exc)}, [
            f"not running on {path} ({hint})"
        ]
    return {"mode": mode, "socket": str(path), "running": True, "status": status}, describe(status)
