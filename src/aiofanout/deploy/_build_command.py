"""``python -m aiofanout build``: its arguments and its run (``_cli.py`` adds the subcommand)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ._build import build
from ._description import Stack
from ._package import MIB, PackageLimits

__all__ = ["add_build", "run_build"]

BUILD_DESCRIPTION = """\
Build a stack file into a SAM template and one zip per function, ready for AWS.

Writes OUT/template.yaml (Transform: AWS::Serverless-2016-10-31) and OUT/<function>.zip: the
function's code directory, its requirements.txt resolved by pip for Lambda (manylinux2014
wheels for its architecture, CPython of the stack's python), and aiofanout itself (this
version, with the extras the function needs: your requirements list only your own
dependencies). Zips are reproducible (same inputs, same bytes) and checked against Lambda's
limits. Resolved dependencies are cached (--cache-dir) by what decides them.

The template is right by construction: SQS mappings report batch item failures, consumed
queues get 6x visibility timeouts and dead-letter queues, each function gets a least-privilege
role naming every resource, an orchestrator that continues itself gets RecursiveLoop: Allow.

then:
  sam deploy --guided --template-file OUT/template.yaml
  # or: aws cloudformation package --template-file OUT/template.yaml --s3-bucket BUCKET \\
  #       --output-template-file packaged.yaml
  #     aws cloudformation deploy --template-file packaged.yaml --stack-name NAME \\
  #       --capabilities CAPABILITY_IAM
"""


def add_build(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``build`` to the parser's subcommands."""
    parser = commands.add_parser(
        "build",
        help="build a stack file into a SAM template and Lambda zips",
        description=BUILD_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", required=True, help="the TOML stack file")
    parser.add_argument("--out", metavar="DIR", required=True, help="where to write (made)")
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="resolved dependencies and pip's downloads (default: ~/.cache/aiofanout)",
    )
    parser.add_argument(
        "--refresh", action="store_true", help="resolve every requirements.txt again"
    )
    parser.add_argument(
        "--max-zipped-mb",
        type=float,
        default=50,
        help="the largest zip allowed, MiB (default: 50, a direct upload's limit)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run_build(args: argparse.Namespace) -> int:
    """Build as ``args`` say; print what was written."""
    started = time.monotonic()
    stack = Stack.load(args.config)
    built = build(
        stack,
        args.out,
        cache_dir=args.cache_dir,
        refresh=args.refresh,
        limits=PackageLimits(zipped=int(args.max_zipped_mb * MIB)),
        progress=not args.quiet,
    )
    for name, path in built.zips.items():
        zipped, unzipped = built.sizes[name]
        print(f"{path}  {zipped / MIB:.1f} MiB ({unzipped / MIB:.1f} MiB unzipped)")
    print(f"{built.template}  ({time.monotonic() - started:.1f} s)")
    print(f"next: sam deploy --guided --template-file {Path(built.template)}")
    return 0
