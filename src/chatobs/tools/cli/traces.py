"""``chatobs traces`` and ``chatobs show``: recent traces, and one trace as a span tree with timing bars."""

from __future__ import annotations

import argparse
from typing import Any

from .output import clip, fmt_cost, fmt_int, fmt_ms, fmt_time, print_json, table
from .store import CliError, filters_from, open_store


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


# --- traces ---------------------------------------------------------------------------------------------------------
def cmd_traces(args: argparse.Namespace) -> int:
    from ...export.local.queries import list_traces

    conn = open_store(args)
    rows = list_traces(conn, filters_from(args), limit=args.limit)
    if args.json:
        print_json(rows)
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
    from ...export.local.queries import get_trace, span_content

    conn = open_store(args)
    trace = get_trace(conn, args.trace_id)
    if trace is None:
        raise CliError(
            f"no trace {args.trace_id!r} in the store (give the full ID or an unambiguous prefix of 6+ hex characters)",
            1,
        )
    if args.json:
        print_json(trace)
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
            indent + clip(_TYPE_MARK.get(s["span_type"], "·") + " " + s["name"], max(8, name_w - len(indent)))
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
            f"{label}  {_bar(s['start_ns'], s['end_ns'], t0, total, width)}  {fmt_ms(s['duration_ms']):>9}  {clip(' '.join(details), 80) if details else ''}"
        )
        if not args.no_content:
            pad = indent + "    "
            for key, text in span_content(s):
                shown = text if args.full else clip(text, 160)
                print(f"{pad}{key}: {shown}")
    if trace.get("feedback"):
        print("\nFeedback")
        for r in trace["feedback"]:
            value = f"{r['value']:g}" if r["kind"] == "numeric" else r["label"]
            who = f" by {r['user_id']}" if r["user_id"] else ""
            comment = f": {clip(r['comment'], 160)}" if r["comment"] else ""
            print(f"  {fmt_time(r['created_ns'])}  {r['name']} = {value}{who}{comment}")
    return 0
