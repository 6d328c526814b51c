"""``python -m aiofanout``: the demo, the local AWS stack, and a worker."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

DESCRIPTION = """\
aiofanout fans work out from asyncio (to coroutines, threads, AWS Lambda, SQS and HTTP) and
gathers it back in under a concurrency cap, timeouts, a deadline and retries.

commands:
  demo    fan a batch of items out and show live progress and a summary table
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m aiofanout``."""
    parser = argparse.ArgumentParser(
        prog="python -m aiofanout",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run the demo fan-out with live progress and a summary",
        description="Fan a batch of items out and show live progress and a summary table.",
    )
    demo.add_argument(
        "--items", type=int, default=300, help="items per phase (default: %(default)s)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m aiofanout`` and the ``aiofanout`` script."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        try:
            return asyncio.run(run_demo(args.items))
        except KeyboardInterrupt:
            return 130
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
