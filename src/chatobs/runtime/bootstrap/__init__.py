"""``chatobs run COMMAND...``: run an app chatobs knows (Open WebUI) with chatobs in it, with no code or file to add.

The command runs with this folder first on ``PYTHONPATH``, so every Python process it starts (uvicorn's workers too)
loads the ``sitecustomize`` module here at start-up. That module imports nothing of chatobs; it waits for the app's
own module (``open_webui.main``) and calls ``chatobs.init()`` right after it, when the integration patches the app.
Python processes that never import such a module (pip, chatobs's own agent) run as if chatobs were not there.
This is how OpenTelemetry's ``opentelemetry-instrument`` works too; a ``.pth`` file would need no command, but it
would run in every Python process of the environment, started by chatobs or not.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
USAGE = "usage: chatobs run COMMAND [ARGS...]   e.g. chatobs run open-webui serve"


def run(argv: Sequence[str]) -> int:
    """Replace this process with ``argv``, this folder first on ``PYTHONPATH``."""
    args = list(argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args or args[0].startswith("-"):
        print(f"chatobs run: expected a command to run\n{USAGE}", file=sys.stderr)
        return 2
    # Also beside this Python: `.venv/bin/chatobs run open-webui serve` finds the venv's own `open-webui`.
    program = shutil.which(args[0]) or shutil.which(args[0], path=os.path.dirname(sys.executable))
    if program is None:
        print(f"chatobs run: {args[0]!r} not found on PATH\n{USAGE}", file=sys.stderr)
        return 127
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.abspath(p) != HERE]
    env["PYTHONPATH"] = os.pathsep.join([HERE, *paths])
    os.execve(program, args, env)
    return 0  # not reached
