"""``chatobs doctor``, ``forget``, ``export`` and ``ui``: checking, deleting, exporting and viewing."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from .output import print_json, progress, progress_done
from .store import CliError, default_db, filters_from, open_store


# --- doctor ---------------------------------------------------------------------------------------------------------
def cmd_doctor(args: argparse.Namespace) -> int:
    from ..doctor import run

    return run(args)


# --- forget ---------------------------------------------------------------------------------------------------------
def cmd_forget(args: argparse.Namespace) -> int:
    from ...export.local.store import Store

    if not args.user and not args.conversation:
        raise CliError("forget: give --user ID and/or --conversation ID")
    path = Path(args.db) if args.db else default_db()
    if not path.exists():
        raise CliError(f"no trace store at {path}", 1)
    progress(
        f"forgetting {'user ' + args.user if args.user else ''}{' conversation ' + args.conversation if args.conversation else ''}…"
    )
    store = Store(path)
    try:
        removed = store.forget(user_id=args.user, conversation_id=args.conversation)
    finally:
        store.close()
    progress_done()
    if args.json:
        print_json({"user": args.user, "conversation": args.conversation, **removed})
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
    from ...export.local.otlp_json import trace_request
    from ...export.local.queries import iter_spans

    conn = open_store(args)
    out: TextIO
    out = open(args.output, "w", encoding="utf-8") if args.output and args.output != "-" else sys.stdout  # noqa: SIM115
    n = traces = 0
    try:
        if args.format == "jsonl":
            for span in iter_spans(conn, filters_from(args)):
                out.write(json.dumps(span, ensure_ascii=False, default=str) + "\n")
                n += 1
                if n % 1000 == 0:
                    progress(f"exported {n:,} spans")
            traces = -1
        else:
            # One ExportTraceServiceRequest per trace per line, like the Collector's file exporter.
            current: list[dict[str, Any]] = []
            for span in iter_spans(conn, filters_from(args)):
                if current and current[0]["trace_id"] != span["trace_id"]:
                    out.write(json.dumps(trace_request(current), ensure_ascii=False) + "\n")
                    traces += 1
                    current = []
                current.append(span)
                n += 1
                if n % 1000 == 0:
                    progress(f"exported {n:,} spans")
            if current:
                out.write(json.dumps(trace_request(current), ensure_ascii=False) + "\n")
                traces += 1
    finally:
        if out is not sys.stdout:
            out.close()
    progress_done()
    if out is not sys.stdout:
        what = f"{n} spans" + (f" in {traces} traces" if traces >= 0 else "")
        print(f"exported {what} to {args.output} ({args.format})", file=sys.stderr)
    return 0


# --- ui -------------------------------------------------------------------------------------------------------------
def cmd_ui(args: argparse.Namespace) -> int:
    from ..viewer import create_app, is_loopback

    path = Path(args.db) if args.db else default_db()
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
