"""``python -m chatobs.runtime.agent``: run the agent in the foreground (what ``chatobs agent`` and the autostart run)."""

from __future__ import annotations

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
