"""Where the agent's socket lives, and the checks that keep it private to the user.

The directory is ``CHATOBS_AGENT_DIR``, else ``$XDG_RUNTIME_DIR/chatobs``, else ``/tmp/chatobs-<uid>``. It is created
with mode 0700; an existing one that is not a real directory, belongs to another user, or lets group/other in is
refused (``AgentDirError`` says what to fix), because whoever can enter it could put their own socket there and
receive the app's prompts.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

__all__ = [
    "APP_SIDE_FIELDS",
    "MAX_SOCKET_PATH",
    "AgentDirError",
    "agent_environment",
    "checked_dir",
    "resolve_dir",
    "settings_key",
    "socket_path",
]

MAX_SOCKET_PATH = 107  # sun_path is 108 bytes on Linux, one of them the terminating NUL


class AgentDirError(RuntimeError):
    """The socket directory cannot be used safely; the message names the setting, the path and the fix."""


def resolve_dir(configured: str | os.PathLike[str] | None) -> Path:
    if configured:
        return Path(configured).expanduser().absolute()
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and Path(runtime_dir).is_absolute():
        return Path(runtime_dir) / "chatobs"
    return Path(f"/tmp/chatobs-{os.getuid()}")


def checked_dir(configured: str | os.PathLike[str] | None) -> Path:
    """The socket directory, created 0700 if missing; ``AgentDirError`` if it exists and is not private."""
    path = resolve_dir(configured)
    try:
        path.mkdir(mode=0o700, parents=False)
    except FileExistsError:
        pass
    except FileNotFoundError:
        # $XDG_RUNTIME_DIR or CHATOBS_AGENT_DIR's parent is missing: make the parents with the same private mode.
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    where = (
        f"CHATOBS_AGENT_DIR={path}"
        if configured
        else f"the agent socket directory {path} (set CHATOBS_AGENT_DIR to choose another)"
    )
    if not stat.S_ISDIR(st.st_mode):
        raise AgentDirError(
            f"{where}: is not a directory (a symlink or a file); remove it or point CHATOBS_AGENT_DIR at a private directory"
        )
    if st.st_uid != os.getuid():
        raise AgentDirError(
            f"{where}: belongs to uid {st.st_uid}, not to this user (uid {os.getuid()}); remove it or point CHATOBS_AGENT_DIR at a directory you own"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise AgentDirError(f"{where}: has mode {mode:04o}, which lets other users in; run `chmod 700 {path}`")
    return path


def socket_path(directory: Path, key: str | None) -> Path:
    """``agent.sock`` for a user-run agent (``key=None``), ``agent-<key>.sock`` for one started for a configuration."""
    path = directory / ("agent.sock" if key is None else f"agent-{key}.sock")
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise AgentDirError(
            f"CHATOBS_AGENT_DIR={directory}: the socket path {path} is longer than {MAX_SOCKET_PATH} bytes (a Unix socket limit); choose a shorter directory"
        )
    return path


# Settings that belong to each app process and travel with its spans (resource) or act before the hand-off; two apps
# that differ only in these share one agent.
APP_SIDE_FIELDS = frozenset(
    {
        "enabled",
        "sdk_disabled",
        "service_name",
        "resource_attributes",
        "environment",
        "release",
        "debug",
        "exclude_paths",
        "chat_routes",
        "trace_all_routes",
        "framework_spans",
        "http_llm_hosts",
        "http_llm_providers",
        "http_llm_max_body_bytes",
        "conversation_header",
        "user_header",
        "tenant_header",
        "message_header",
        "parent_message_header",
        "conversation_fields",
        "user_fields",
        "tenant_fields",
        "message_fields",
        "parent_message_fields",
        "max_body_bytes",
        "max_id_length",
        "propagate_identity",
        "trace_id_header",
        "instrument",
        "capture_content",
        "openai_stream_usage",
        "capture_tool_io",
        "mcp_server_name",
        "sample_ignore_remote_parent",
        "otel_traces_sampler",
        "otel_traces_sampler_arg",
        "record_unsampled",
        "capture_headers",
        "agent",
        "agent_dir",
        "agent_queue_size",
        "agent_idle_exit_s",
        "viewer_url",
        "viewer_token",
        # The feedback route and tokens live in the app processes; the agent never needs the key.
        "feedback_key",
        "feedback_token_header",
        "feedback_max_age_hours",
        "feedback_max_comment_chars",
        "feedback_max_body_bytes",
        "feedback_rate_per_minute",
    }
)


def _canonical(value: Any) -> str:
    if hasattr(value, "get_secret_value"):
        return "secret:" + hashlib.sha256(value.get_secret_value().encode()).hexdigest()
    if isinstance(value, Path):
        return str(value.expanduser().absolute())
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_canonical(v) for v in value) + "]"
    return repr(value)


def settings_key(settings: Any) -> str:
    """A short hash of the settings the agent uses: the name of the socket of the agent for this configuration."""
    h = hashlib.sha256()
    for name in sorted(type(settings).model_fields):
        if name not in APP_SIDE_FIELDS:
            h.update(f"{name}={_canonical(getattr(settings, name))}\n".encode())
    return h.hexdigest()[:12]


def _env_value(value: Any) -> str:
    if hasattr(value, "get_secret_value"):
        return str(value.get_secret_value())
    if isinstance(value, Path):
        return str(value.expanduser().absolute())
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def agent_environment(settings: Any, overrides: dict[str, Any], env_name: Any) -> dict[str, str]:
    """The environment an agent for ``settings`` starts with: this process's, plus the ``init()`` overrides as
    variables, with every path made absolute (the agent runs from ``/``)."""
    env = dict(os.environ)
    fields = type(settings).model_fields

    def put(name: str, value: Any) -> None:
        aliases = {a.upper() for a in fields[name].json_schema_extra["env"]}
        for key in [k for k in env if k.upper() in aliases]:
            del env[key]
        if value is not None:
            env[env_name(name)] = _env_value(value)

    for name in overrides:
        if name not in APP_SIDE_FIELDS:
            put(name, getattr(settings, name))
    for name in fields:
        value = getattr(settings, name)
        if isinstance(value, Path) and name not in APP_SIDE_FIELDS:
            put(name, value)
    return env
