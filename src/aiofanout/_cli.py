"""``python -m aiofanout``: the demo, the local AWS stack, and a worker."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from ._errors import UsageError

DESCRIPTION = """\
aiofanout fans work out from asyncio (to coroutines, threads, AWS Lambda, SQS and HTTP) and
gathers it back in under a concurrency cap, timeouts, a deadline and retries.

commands:
  demo    fan a batch out (in-process, Lambda, SQS) with live progress and a summary table
  serve   run the local AWS (moto server + local Lambda runtime) in the foreground

examples:
  python -m aiofanout demo
  python -m aiofanout serve --function worker=worker.lambda_handler --code-path examples
"""


SERVE_DESCRIPTION = (
    "Start a moto server (SQS, S3, IAM) and the local Lambda runtime on 127.0.0.1, register "
    "functions, print the endpoints, and serve until Ctrl-C. Point boto3, aioboto3 or the AWS "
    "CLI at them with --endpoint-url."
)


REPEATABLE_SERVE_OPTIONS = (
    ("--function", "NAME=HANDLER", "register a function, e.g. worker=worker.lambda_handler"),
    ("--code-path", "DIR", "a folder put on the functions' PYTHONPATH (default: .)"),
    ("--env", "KEY=VALUE", "an environment variable of every function"),
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m aiofanout``."""
    parser = argparse.ArgumentParser(
        prog="python -m aiofanout",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(commands)
    _add_serve(commands)
    return parser


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the demo fan-out with live progress and a summary",
        description="Fan a batch of items out and show live progress and a summary table.",
    )
    demo.add_argument(
        "--items", type=int, default=300, help="items per phase (default: %(default)s)"
    )
    demo.add_argument(
        "--in-process",
        action="store_true",
        help="run only the in-process phase (no moto server, no Lambda runtime)",
    )


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the local AWS stack in the foreground and print its endpoints",
        description=SERVE_DESCRIPTION,
    )
    for flag, metavar, text in REPEATABLE_SERVE_OPTIONS:
        serve.add_argument(
            flag, metavar=metavar, help=f"{text} (repeatable)", action="append", default=[]
        )
    serve.add_argument("--timeout", type=float, default=30.0, help="function timeout, seconds")
    serve.add_argument(
        "--memory", type=int, default=128, help="function memory, MB (informational)"
    )
    serve.add_argument(
        "--reserved-concurrency",
        type=int,
        default=10,
        help="environments per function; more concurrent invokes get 429 (default: 10)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m aiofanout`` and the ``aiofanout`` script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from ._demo import run_demo

            return asyncio.run(run_demo(args.items, local=not args.in_process))
        if args.command == "serve":
            return asyncio.run(serve(args))
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse rejects unknown commands


async def serve(args: argparse.Namespace) -> int:
    """Run the embedded stack until interrupted."""
    from .local import FunctionConfig, stack

    environment = {}
    for pair in args.env:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--env takes KEY=VALUE, got {pair!r}")
        environment[key] = value
    configs = []
    for spec in args.function:
        name, sep, handler = spec.partition("=")
        if not sep or not name or not handler:
            raise UsageError(f"--function takes NAME=HANDLER, got {spec!r}")
        configs.append(
            FunctionConfig(
                name,
                handler,
                code_paths=args.code_path or ["."],
                timeout=args.timeout,
                reserved_concurrency=args.reserved_concurrency,
                memory=args.memory,
                environment=environment,
            )
        )
    async with stack(functions=configs) as aws:
        print(f"moto server (SQS, S3, IAM):  {aws.endpoint_url}")
        print(f"local Lambda (Invoke API):   {aws.lambda_endpoint_url}")
        print("credentials: AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing, us-east-1")
        for config in configs:
            print(
                f"  aws --endpoint-url {aws.lambda_endpoint_url} lambda invoke "
                f"--function-name {config.name} --payload '{{}}' "
                "--cli-binary-format raw-in-base64-out out.json"
            )
        print("serving until Ctrl-C", flush=True)
        await asyncio.Event().wait()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
