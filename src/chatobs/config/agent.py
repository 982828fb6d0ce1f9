"""Agent settings: the chatobs agent process that runs the pipeline for the app processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import field_validator
from pydantic_settings import BaseSettings

from .fields import env_field


class AgentSettings(BaseSettings):
    """Agent: the chatobs agent process that runs the pipeline for the app processes."""

    agent: Literal["auto", "connect", "inprocess"] = env_field(
        "CHATOBS_AGENT",
        default="auto",
        doc="Where the pipeline runs: `auto` = in the chatobs agent for this configuration, started detached when none answers (one per host, user and configuration); `connect` = in an agent the user runs (`chatobs agent`: sidecar, systemd), never started by the app; `inprocess` = on a thread of this process (single-process scripts, tests). `init()` with exporters passed in always runs in process.",
        example="connect",
    )
    agent_dir: Path | None = env_field(
        "CHATOBS_AGENT_DIR",
        default=None,
        doc="Directory of the agent's socket; default `$XDG_RUNTIME_DIR/chatobs`, else `/tmp/chatobs-<uid>`. Created with mode 0700; one owned by another user or open to group/other is refused (spans are then dropped and counted).",
        example="/run/chatobs",
    )
    agent_queue_size: int = env_field(
        "CHATOBS_AGENT_QUEUE_SIZE",
        default=8192,
        ge=16,
        doc="Finished spans an app process holds for the agent (while it is slow, restarting or unreachable); past it new spans are dropped and counted.",
        example="20000",
    )
    agent_idle_exit_s: float = env_field(
        "CHATOBS_AGENT_IDLE_EXIT_S",
        default=300.0,
        ge=0,
        doc="An agent started by an app exits after this long without connected processes; 0 = never. A user-run `chatobs agent` does not exit unless given `--idle-exit`.",
        example="60",
    )
    agent_nice: int = env_field(
        "CHATOBS_AGENT_NICE",
        default=10,
        ge=0,
        le=19,
        doc="The agent's scheduling niceness (at least this; 0 = leave it as started). Its work (masking, export) can wait; on a busy host the CPU goes to the apps' requests first, and what the agent cannot keep up with waits in the bounded queues (full: dropped and counted).",
        example="0",
    )

    @field_validator(
        "agent",
        mode="before",
    )
    @classmethod
    def _lower_agent(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value
