"""`python -m demo_app`: a first cut of the demo -- an echo chat app with chatobs added as the README says."""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m demo_app")
    parser.add_argument("--framework", choices=["fastapi", "flask"], default="fastapi")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    from .app import run

    run(args.framework, args.host, args.port)


if __name__ == "__main__":
    main()
