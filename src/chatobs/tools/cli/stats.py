"""``chatobs stats``: latency, tokens and cost, tools, errors, activity and traffic of the local store."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from .output import fmt_cost, fmt_int, fmt_ms, fmt_time, print_json, table
from .store import filters_from, open_store


# --- stats ----------------------------------------------------------------------------------------------------------
def cmd_stats(args: argparse.Namespace) -> int:
    from ...export.local.queries import stats

    conn = open_store(args)
    s = stats(conn, filters_from(args))
    if args.json:
        print_json(s)
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
