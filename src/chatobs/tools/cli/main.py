"""The ``chatobs`` command: check the configuration, and read the local trace store.

    chatobs doctor                      effective settings (secrets hidden), exporters and why, a live check of each
    chatobs traces [filters]            recent traces
    chatobs show TRACE_ID               one trace as a span tree with timing bars, tokens, cost, inputs/outputs
    chatobs stats [--since 24h]         latency, tokens and cost, tools, errors, activity, traffic
    chatobs forget --user ID            delete a person's data (or --conversation ID)
    chatobs export [-o FILE]            JSONL or OTLP-JSON
    chatobs ui                          the trace viewer on http://127.0.0.1:8765

Tables for people; ``--json`` for scripts. Exit codes: 0 fine, 1 a check failed or nothing found, 2 bad usage/config.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .manage import cmd_doctor, cmd_export, cmd_forget, cmd_ui
from .stats import cmd_stats
from .store import CliError
from .traces import cmd_show, cmd_traces


# --- argument parsing -----------------------------------------------------------------------------------------------
def _add_common(p: argparse.ArgumentParser, *, filters: bool = False, window: bool = False) -> None:
    p.add_argument("--db", help="trace store file (default: CHATOBS_LOCAL_DB or .chatobs/traces.db)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    if filters:
        p.add_argument("--conversation", "-c", help="only this conversation ID")
        p.add_argument("--user", "-u", help="only this user ID")
        p.add_argument("--model", "-m", help="only traces that called this model")
        p.add_argument("--tool", "-t", help="only traces that called this tool")
        p.add_argument(
            "--status", choices=("ok", "error"), help="only traces with (error) or without (ok) failed spans"
        )
        p.add_argument(
            "--feedback",
            choices=("any", "negative", "positive", "none"),
            help="only traces with any user feedback, a negative rating, only positive ones, or none",
        )
        p.add_argument(
            "--negative", action="store_true", help="only traces with negative feedback (--feedback negative)"
        )
    if filters or window:
        p.add_argument("--since", help="start of the window: 30m, 2h, 7d or an ISO time")
        p.add_argument("--until", help="end of the window: same forms as --since")


def build_parser() -> argparse.ArgumentParser:
    from ... import __version__

    parser = argparse.ArgumentParser(
        prog="chatobs", description="LLM observability for chat apps: check the setup, read the local trace store."
    )
    parser.add_argument("--version", action="version", version=f"chatobs {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "doctor", help="show the effective configuration and check every exporter with a synthetic trace"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--all", action="store_true", help="list every setting, not only the ones that differ from the default"
    )
    p.add_argument("--no-check", action="store_true", help="do not send the synthetic trace")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds each live check may take (default 5)")
    p.set_defaults(func=cmd_doctor)

    sub.add_parser(
        "agent",
        help="run the agent in the foreground (sidecar, systemd), or --status of the running one; see docs/agent.md",
    )

    sub.add_parser(
        "run",
        help="run an app with chatobs in it, no code changes (chatobs run open-webui serve); see docs/integrations.md",
    )

    p = sub.add_parser("traces", help="recent traces, newest first")
    _add_common(p, filters=True)
    p.add_argument("--limit", "-n", type=int, default=30, help="how many (default 30)")
    p.set_defaults(func=cmd_traces)

    p = sub.add_parser("show", help="one trace: span tree with timing bars, tokens, cost, inputs and outputs")
    p.add_argument("trace_id", help="trace ID, or an unambiguous prefix (6+ hex characters)")
    _add_common(p)
    p.add_argument("--full", action="store_true", help="do not shorten inputs and outputs")
    p.add_argument("--no-content", action="store_true", help="hide inputs and outputs")
    p.add_argument("--width", type=int, default=30, help="width of the timing bars")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("stats", help="latency percentiles, tokens and cost, tool health, errors, activity, traffic")
    _add_common(p, window=True)
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("forget", help="delete every trace of a user or a conversation from the local store (GDPR)")
    p.add_argument("--db", help="trace store file (default: CHATOBS_LOCAL_DB or .chatobs/traces.db)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--user", "-u", help="user ID whose traces are deleted")
    p.add_argument("--conversation", "-c", help="conversation ID whose traces are deleted")
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("export", help="write spans as JSONL or OTLP-JSON, to move them into another backend")
    _add_common(p, filters=True)
    p.add_argument(
        "--format",
        "-f",
        choices=("jsonl", "otlp-json"),
        default="jsonl",
        help="jsonl: one span per line; otlp-json: one OTLP ExportTraceServiceRequest per trace per line",
    )
    p.add_argument("--output", "-o", help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("ui", help="serve the trace viewer (default http://127.0.0.1:8765)")
    p.add_argument("--db", help="trace store file (default: CHATOBS_LOCAL_DB or .chatobs/traces.db)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (non-loopback requires CHATOBS_VIEWER_TOKEN)")
    p.add_argument("--port", type=int, default=8765)
    p.set_defaults(func=cmd_ui)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["agent"]:
        # The agent has its own options (python -m chatobs.runtime.agent); argparse's REMAINDER cannot pass them through.
        from ...runtime.agent.main import main as agent_main

        return agent_main(argv[1:])
    if argv[:1] == ["run"]:
        # The command's own options are its own: passed through untouched.
        from ...runtime.bootstrap import run

        return run(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"chatobs: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `chatobs traces | head`: the reader left; not an error.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main())
