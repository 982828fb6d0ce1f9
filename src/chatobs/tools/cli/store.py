"""Opening the local trace store for a command, and the filters its options give."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


# --- the store ------------------------------------------------------------------------------------------------------
def default_db() -> Path:
    from ...config import ConfigError, load_settings

    try:
        return Path(load_settings().local_db)
    except ConfigError:
        return Path(os.environ.get("CHATOBS_LOCAL_DB", ".chatobs/traces.db"))


class CliError(Exception):
    """Printed as ``chatobs: <message>`` with exit code ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def open_store(args: argparse.Namespace):
    from ...export.local.queries import has_schema
    from ...export.local.store import connect

    path = Path(args.db) if args.db else default_db()
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


def filters_from(args: argparse.Namespace):
    from ...export.local.queries import Filters, parse_time

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
