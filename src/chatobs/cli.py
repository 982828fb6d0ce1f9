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
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

__all__ = ["main"]


# --- output helpers -------------------------------------------------------------------------------------------------
def _out() -> TextIO:
    return sys.stdout


def _print_json(value: Any) -> None:
    json.dump(value, _out(), indent=2, ensure_ascii=False, default=str)
    _out().write("\n")


def fmt_time(ns: int | None) -> str:
    if not ns:
        return "-"
    return datetime.fromtimestamp(ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms >= 10000:
        return f"{ms / 1000:.1f}s"
    if ms >= 1000:
        return f"{ms / 1000:.2f}s"
    return f"{ms:.1f}ms" if ms < 100 else f"{ms:.0f}ms"


def fmt_cost(usd: float | None) -> str:
    if not usd:
        return "-"
    return f"${usd:.4f}" if usd < 1 else f"${usd:.2f}"


def fmt_int(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _clip(text: Any, width: int) -> str:
    s = "-" if text is None or text == "" else str(text)
    s = " ".join(s.split())  # one line per row, whatever the content
    return s if len(s) <= width else s[: max(1, width - 1)] + "…"


def table(
    rows: Sequence[Sequence[Any]], headers: Sequence[str], *, max_width: int = 40, right: Sequence[int] = ()
) -> str:
    """A plain aligned text table; cells are clipped to ``max_width`` and flattened to one line."""
    cells = [[_clip(c, max_width) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(widths[i]) if i in right else v.ljust(widths[i]) for i, v in enumerate(values)]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _progress(message: str) -> None:
    # Only when someone is watching: scripts reading stderr get no noise.
    if sys.stderr.isatty():
        sys.stderr.write("\r" + message)
        sys.stderr.flush()


def _progress_done() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\n")


# --- the store ------------------------------------------------------------------------------------------------------
def _default_db() -> Path:
    from .config import ConfigError, load_settings

    try:
        return Path(load_settings().local_db)
    except ConfigError:
        return Path(os.environ.get("CHATOBS_LOCAL_DB", ".chatobs/traces.db"))


class CliError(Exception):
    """Printed as ``chatobs: <message>`` with exit code ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _open(args: argparse.Namespace):
    from .exporters.local.queries import has_schema
    from .exporters.local.store import connect

    path = Path(args.db) if args.db else _default_db()
    if not path.exists():
        raise CliError(f"no trace store at {path} (CHATOBS_LOCAL_DB); run your app with chatobs first, or pass --db", 1)
    try:
        conn = connect(path, readonly=True)
        if not has_schema(conn):
            raise CliError(f"{path} is not a chatobs trace store (no traces table)", 1)
    except Exception as exc:  # sqlite errors on a foreign file
        if isinstance(exc, CliError):
            raise
        raise CliError(f"cannot read {path}: {exc}", 1) from None
    return conn


def _filters(args: argparse.Namespace):
    from .exporters.local.queries import Filters, parse_time

    try:
        since = parse_time(getattr(args, "since", None))
        until = parse_time(getattr(args, "until", None))
    except ValueError as exc:
        raise CliError(f"--since/--until: {exc}") from None
    return Filters(
        conversation=getattr(args, "conversation", None),
        user=getattr(args, "user", None),
        model=getattr(args, "model", None),
        tool=getattr(args, "tool", None),
        status=getattr(args, "status", None),
        feedback="negative" if getattr(args, "negative", False) else getattr(args, "feedback", None),
        since_ns=since,
        until_ns=until,
    )


# --- doctor ---------------------------------------------------------------------------------------------------------
def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import run

    return run(args)


# --- traces ---------------------------------------------------------------------------------------------------------
def cmd_traces(args: argparse.Namespace) -> int:
    from .exporters.local.queries import list_traces

    conn = _open(args)
    rows = list_traces(conn, _filters(args), limit=args.limit)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no traces match")
        return 0
    print(
        table(
            [
                [
                    fmt_time(r["start_ns"]),
                    r["trace_id"],
                    r["conversation_id"],
                    r["user_id"],
                    r["route"] or r["name"],
                    fmt_ms(r["duration_ms"]),
                    r["span_count"],
                    r["llm_calls"],
                    r["tool_calls"],
                    fmt_int((r["input_tokens"] or 0) + (r["output_tokens"] or 0))
                    if r["input_tokens"] or r["output_tokens"]
                    else "-",
                    fmt_cost(r["cost_usd"]),
                    r["status"],
                    _feedback_cell(r.get("feedback") or []),
                ]
                for r in rows
            ],
            [
                "TIME",
                "TRACE",
                "CONVERSATION",
                "USER",
                "ROUTE",
                "DURATION",
                "SPANS",
                "LLM",
                "TOOLS",
                "TOKENS",
                "COST",
                "STATUS",
                "FEEDBACK",
            ],
            right=(5, 6, 7, 8, 9, 10),
            max_width=32,
        )
    )
    print(f"\n{len(rows)} trace(s); `chatobs show TRACE` for one")
    return 0


_TYPE_MARK = {"request": "◆", "llm": "●", "tool": "■", "mcp": "▲", "agent": "◇", "workflow": "◇", "task": "○"}


def _bar(start: int, end: int, t0: int, total: int, width: int) -> str:
    if total <= 0:
        return "█".ljust(width)
    a = int((start - t0) / total * width)
    b = max(a + 1, round((end - t0) / total * width))
    a, b = min(a, width - 1), min(b, width)
    return (" " * a + "█" * (b - a)).ljust(width)


def cmd_show(args: argparse.Namespace) -> int:
    from .exporters.local.queries import get_trace, span_content

    conn = _open(args)
    trace = get_trace(conn, args.trace_id)
    if trace is None:
        raise CliError(
            f"no trace {args.trace_id!r} in the store (give the full ID or an unambiguous prefix of 6+ hex characters)",
            1,
        )
    if args.json:
        _print_json(trace)
        return 0
    print(
        f"trace {trace['trace_id']}  {fmt_time(trace['start_ns'])}  {fmt_ms(trace['duration_ms'])}  {trace['status']}"
    )
    ident = [
        f"{k}={trace[c]}"
        for k, c in (
            ("conversation", "conversation_id"),
            ("user", "user_id"),
            ("tenant", "tenant_id"),
            ("message", "message_id"),
        )
        if trace.get(c)
    ]
    if ident:
        print("  " + "  ".join(ident))
    print(
        f"  {trace['span_count']} spans, {trace['llm_calls']} LLM calls, {trace['tool_calls']} tool calls, "
        f"{fmt_int(trace['input_tokens'] or 0)} in / {fmt_int(trace['output_tokens'] or 0)} out tokens, cost {fmt_cost(trace['cost_usd'])}"
    )
    print()
    t0 = trace["start_ns"]
    total = trace["end_ns"] - t0
    width = args.width
    name_w = min(48, max(len("  " * s["depth"] + s["name"]) + 2 for s in trace["spans"]))
    print(f"{'SPAN'.ljust(name_w)}  {'TIMELINE'.ljust(width)}  {'DURATION':>9}  DETAILS")
    for s in trace["spans"]:
        indent = "  " * min(s["depth"], 10)
        label = (
            indent + _clip(_TYPE_MARK.get(s["span_type"], "·") + " " + s["name"], max(8, name_w - len(indent)))
        ).ljust(name_w)
        details = []
        if s["model"]:
            details.append(s["model"])
        if s["tool_name"]:
            details.append(f"tool={s['tool_name']}" + (f"@{s['mcp_server']}" if s["mcp_server"] else ""))
        if s["input_tokens"] is not None or s["output_tokens"] is not None:
            details.append(f"{fmt_int(s['input_tokens'] or 0)}→{fmt_int(s['output_tokens'] or 0)} tok")
        if s["cost_usd"]:
            details.append(fmt_cost(s["cost_usd"]))
        if s["ttft_ms"] is not None:
            details.append(f"ttft {fmt_ms(s['ttft_ms'])}")
        if s["status"] == "error":
            details.append("ERROR" + (f": {s['status_message']}" if s["status_message"] else ""))
        print(
            f"{label}  {_bar(s['start_ns'], s['end_ns'], t0, total, width)}  {fmt_ms(s['duration_ms']):>9}  {_clip(' '.join(details), 80) if details else ''}"
        )
        if not args.no_content:
            pad = indent + "    "
            for key, text in span_content(s):
                shown = text if args.full else _clip(text, 160)
                print(f"{pad}{key}: {shown}")
    if trace.get("feedback"):
        print("\nFeedback")
        for r in trace["feedback"]:
            value = f"{r['value']:g}" if r["kind"] == "numeric" else r["label"]
            who = f" by {r['user_id']}" if r["user_id"] else ""
            comment = f": {_clip(r['comment'], 160)}" if r["comment"] else ""
            print(f"  {fmt_time(r['created_ns'])}  {r['name']} = {value}{who}{comment}")
    return 0


# --- stats ----------------------------------------------------------------------------------------------------------
def _feedback_cell(ratings: list[dict[str, Any]]) -> str:
    """``-``, or the ratings as +/- marks (thumbs up/down, a category) and numbers, e.g. ``- 4.0``."""
    if not ratings:
        return "-"
    marks = []
    for r in ratings:
        if r["kind"] == "numeric":
            marks.append(f"{r['value']:g}")
        else:
            marks.append("-" if r["negative"] else "+" if r["kind"] == "boolean" else str(r["label"]))
    return " ".join(marks)


def cmd_stats(args: argparse.Namespace) -> int:
    from .exporters.local.queries import stats

    conn = _open(args)
    s = stats(conn, _filters(args))
    if args.json:
        _print_json(s)
        return 0
    t = s["totals"]
    window = f"since {args.since}" if args.since else "all time"
    if args.until:
        window += f" until {args.until}"
    print(
        f"chatobs stats ({window}): {t['turns']} chat turns (+{t['other_traces']} other traces), "
        f"{t['conversations']} conversations, {t['users']} users, "
        f"{t['llm_calls']} LLM calls, {t['tool_calls']} tool calls, {fmt_int(t['input_tokens'])} in / "
        f"{fmt_int(t['output_tokens'])} out tokens, cost {fmt_cost(t['cost_usd'])}, {t['error_traces']} traces with errors"
    )
    if not t["traces"]:
        return 0

    def section(
        title: str, rows: list[dict[str, Any]], cols: list[tuple[str, str, Callable[[Any], str]]], right_from: int = 1
    ) -> None:
        if not rows:
            return
        print(f"\n{title}")
        print(
            table(
                [[fn(r.get(k)) for _, k, fn in cols] for r in rows],
                [h for h, _, _ in cols],
                right=range(right_from, len(cols)),
            )
        )

    ident: Callable[[Any], str] = lambda v: "-" if v is None else str(v)  # noqa: E731
    lat = [
        ("COUNT", "count", ident),
        ("P50", "p50_ms", fmt_ms),
        ("P95", "p95_ms", fmt_ms),
        ("P99", "p99_ms", fmt_ms),
        ("MAX", "max_ms", fmt_ms),
    ]
    section("Latency by route", s["latency_by_route"], [("ROUTE", "key", ident), *lat])
    section("Latency by model", s["latency_by_model"], [("MODEL", "key", ident), *lat])
    section("Latency by tool", s["latency_by_tool"], [("TOOL", "key", ident), *lat])
    usage = [
        ("CALLS", "calls", ident),
        ("INPUT TOK", "input_tokens", fmt_int),
        ("OUTPUT TOK", "output_tokens", fmt_int),
        ("COST", "cost_usd", fmt_cost),
    ]
    section("Tokens and cost by model", s["usage_by_model"], [("MODEL", "key", ident), *usage])
    section(
        "By model and prompt version (turns with LLM calls; feedback on those turns)",
        s["by_prompt_version"],
        [
            ("MODEL", "model", ident),
            ("PROMPT", "prompt", ident),
            ("VERSION", "version", ident),
            ("TURNS", "turns", ident),
            ("FEEDBACK", "feedback", ident),
            ("NEGATIVE", "negative", ident),
            ("MEAN SCORE", "mean_score", ident),
            ("COST", "cost_usd", fmt_cost),
            ("P50", "p50_ms", fmt_ms),
            ("P95", "p95_ms", fmt_ms),
        ],
        right_from=3,
    )
    section("Tokens and cost by user", s["usage_by_user"], [("USER", "key", ident), *usage])
    section("Tokens and cost by conversation", s["usage_by_conversation"], [("CONVERSATION", "key", ident), *usage])
    section("Tokens and cost by day (UTC)", s["usage_by_day"], [("DAY", "key", ident), *usage])
    section(
        "Tools by MCP server",
        s["tools_by_server"],
        [
            ("SERVER", "server", ident),
            ("TOOL", "tool", ident),
            ("CALLS", "calls", ident),
            ("ERRORS", "errors", ident),
            ("SUCCESS", "success_pct", lambda v: f"{v}%"),
            ("AVG", "avg_ms", fmt_ms),
            ("MAX", "max_ms", fmt_ms),
        ],
        right_from=2,
    )
    section(
        "Slowest tool calls",
        s["slowest_tool_calls"],
        [
            ("TOOL", "tool", ident),
            ("SERVER", "server", ident),
            ("DURATION", "duration_ms", fmt_ms),
            ("STATUS", "status", ident),
            ("TRACE", "trace_id", ident),
        ],
        right_from=2,
    )
    section(
        "Tool errors",
        s["tool_errors"],
        [
            ("TIME", "start_ns", fmt_time),
            ("TOOL", "tool", ident),
            ("SERVER", "server", ident),
            ("ERROR", "error", ident),
            ("TRACE", "trace_id", ident),
        ],
        right_from=99,
    )
    section(
        "LLM errors by provider",
        s["llm_errors_by_provider"],
        [
            ("PROVIDER", "provider", ident),
            ("CALLS", "calls", ident),
            ("ERRORS", "errors", ident),
            ("ERROR RATE", "error_pct", lambda v: f"{v}%"),
        ],
    )
    section(
        "Most active conversations",
        s["active_conversations"],
        [
            ("CONVERSATION", "key", ident),
            ("TURNS", "turns", ident),
            ("USER", "user_id", ident),
            ("LAST", "last_ns", fmt_time),
        ],
        right_from=1,
    )
    section(
        "Most active users",
        s["active_users"],
        [
            ("USER", "key", ident),
            ("TURNS", "turns", ident),
            ("CONVERSATIONS", "conversations", ident),
            ("LAST", "last_ns", fmt_time),
        ],
    )
    if s["hourly_traffic"]:
        print("\nHourly traffic (UTC)")
        peak = max(h["traces"] for h in s["hourly_traffic"]) or 1
        for h in s["hourly_traffic"]:
            bar = "█" * max(1, round(h["traces"] / peak * 40))
            errs = f"  ({h['errors']} with errors)" if h["errors"] else ""
            print(f"{h['hour']}  {h['traces']:>6}  {bar}  {h['turns']} turns{errs}")
    return 0


# --- forget ---------------------------------------------------------------------------------------------------------
def cmd_forget(args: argparse.Namespace) -> int:
    from .exporters.local.store import Store

    if not args.user and not args.conversation:
        raise CliError("forget: give --user ID and/or --conversation ID")
    path = Path(args.db) if args.db else _default_db()
    if not path.exists():
        raise CliError(f"no trace store at {path}", 1)
    _progress(
        f"forgetting {'user ' + args.user if args.user else ''}{' conversation ' + args.conversation if args.conversation else ''}…"
    )
    store = Store(path)
    try:
        removed = store.forget(user_id=args.user, conversation_id=args.conversation)
    finally:
        store.close()
    _progress_done()
    if args.json:
        _print_json({"user": args.user, "conversation": args.conversation, **removed})
        return 0
    who = " and ".join(
        x
        for x in (
            f"user {args.user!r}" if args.user else "",
            f"conversation {args.conversation!r}" if args.conversation else "",
        )
        if x
    )
    print(
        f"removed {removed['traces']} traces ({removed['spans']} spans, {removed['conversations']} conversations) of {who} from {path}"
    )
    return 0


# --- export ---------------------------------------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    from .exporters.local.otlp_json import trace_request
    from .exporters.local.queries import iter_spans

    conn = _open(args)
    out: TextIO
    out = open(args.output, "w", encoding="utf-8") if args.output and args.output != "-" else sys.stdout  # noqa: SIM115
    n = traces = 0
    try:
        if args.format == "jsonl":
            for span in iter_spans(conn, _filters(args)):
                out.write(json.dumps(span, ensure_ascii=False, default=str) + "\n")
                n += 1
                if n % 1000 == 0:
                    _progress(f"exported {n:,} spans")
            traces = -1
        else:
            # One ExportTraceServiceRequest per trace per line, like the Collector's file exporter.
            current: list[dict[str, Any]] = []
            for span in iter_spans(conn, _filters(args)):
                if current and current[0]["trace_id"] != span["trace_id"]:
                    out.write(json.dumps(trace_request(current), ensure_ascii=False) + "\n")
                    traces += 1
                    current = []
                current.append(span)
                n += 1
                if n % 1000 == 0:
                    _progress(f"exported {n:,} spans")
            if current:
                out.write(json.dumps(trace_request(current), ensure_ascii=False) + "\n")
                traces += 1
    finally:
        if out is not sys.stdout:
            out.close()
    _progress_done()
    if out is not sys.stdout:
        what = f"{n} spans" + (f" in {traces} traces" if traces >= 0 else "")
        print(f"exported {what} to {args.output} ({args.format})", file=sys.stderr)
    return 0


# --- ui -------------------------------------------------------------------------------------------------------------
def cmd_ui(args: argparse.Namespace) -> int:
    from .viewer import create_app, is_loopback

    path = Path(args.db) if args.db else _default_db()
    token = os.environ.get("CHATOBS_VIEWER_TOKEN") or None
    if not is_loopback(args.host) and not token:
        raise CliError(
            f"--host {args.host}: the viewer shows prompts and replies; serving it beyond this machine requires CHATOBS_VIEWER_TOKEN"
        )
    try:
        import uvicorn
    except ImportError:
        raise CliError("chatobs ui needs uvicorn and starlette: pip install 'chatobs[viewer]'") from None
    app = create_app(path, token=token)
    url = f"http://{args.host}:{args.port}/" + ("?token=…" if token else "")
    print(f"chatobs viewer on {url} (store {path}); Ctrl+C to stop", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


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
    from . import __version__

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
        # The agent has its own options (python -m chatobs.agentd); argparse's REMAINDER cannot pass them through.
        from .agentd.main import main as agent_main

        return agent_main(argv[1:])
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
