"""``python -m aiofanout``: the demo, the local AWS stack, builds, plans, and a journal's runs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._errors import UsageError

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from .local import DeployedTemplate, FunctionConfig, LocalAws, Template

DESCRIPTION = """\
aiofanout fans work out from asyncio (to coroutines, threads, AWS Lambda, SQS and HTTP) and
gathers it back in under a concurrency cap, timeouts, a deadline and retries.

commands:
  demo    fan a batch out (in-process, journaled and resumed, Lambda, SQS) with live progress
          and a summary table
  serve   run the local AWS (moto server + local Lambda runtime) in the foreground
  build   a stack file into a SAM template and one zip per function, for AWS
  runs    read a journal's runs: list, show RUN, failures RUN, export RUN (jsonl or csv)
  plan    predict a fan-out's wall time, throttling and cost on a simulated AWS

examples:
  python -m aiofanout demo
  python -m aiofanout serve --function worker=worker.lambda_handler --code-path examples
  python -m aiofanout serve --port 9001 --config local-aws.toml
  python -m aiofanout build --config stack.toml --out build
  python -m aiofanout serve --template build/template.yaml --parameter Stage=dev
  python -m aiofanout runs list --journal runs/
  python -m aiofanout plan --items 100000 --duration 0.5 --concurrency 1000 --adaptive
"""


SERVE_DESCRIPTION = (
    "Start a moto server (SQS, S3, DynamoDB, SNS, IAM, ...) and the local Lambda runtime on "
    "127.0.0.1, register functions (options, a --config stack file, or the Lambda API: aws "
    "lambda create-function), print the endpoints, and serve until Ctrl-C or SIGTERM. Point "
    "boto3 or aioboto3 at them with the printed AWS_ENDPOINT_URL* variables, the AWS CLI with "
    "--endpoint-url."
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
    from .deploy._build_command import add_build

    add_build(commands)
    from ._runs_cli import add_runs

    add_runs(commands)
    from .sim._plan import add_plan

    add_plan(commands)
    return parser


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the demo fan-out with live progress and a summary",
        description=(
            "Fan a batch of items out and show live progress and a summary table: in-process; "
            "a journaled run stopped by its deadline and resumed; then, on the embedded local "
            "stack, Lambda RequestResponse, Lambda Event with replies, and SQS with replies."
        ),
    )
    demo.add_argument(
        "--items", type=int, default=300, help="items per phase (default: %(default)s)"
    )
    demo.add_argument(
        "--in-process",
        action="store_true",
        help="run only the in-process phases (no moto server, no Lambda runtime)",
    )


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .local._template import SUBSET

    serve = commands.add_parser(
        "serve",
        help="run the local AWS stack in the foreground and print its endpoints",
        description=SERVE_DESCRIPTION,
        epilog=SUBSET,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for flag, metavar, text in REPEATABLE_SERVE_OPTIONS:
        serve.add_argument(
            flag, metavar=metavar, help=f"{text} (repeatable)", action="append", default=[]
        )
    serve.add_argument(
        "--port",
        type=int,
        default=0,
        help="the Lambda API's port on 127.0.0.1 (default: a free one)",
    )
    serve.add_argument(
        "--moto-port", type=int, default=0, help="the moto server's port (default: a free one)"
    )
    serve.add_argument(
        "--config",
        metavar="FILE",
        help="a TOML stack file: functions, queues, event source mappings, event invoke configs",
    )
    _add_template_options(serve)
    _add_function_options(serve)


def _add_function_options(serve: argparse.ArgumentParser) -> None:
    """What every function of ``serve`` gets, and the account they share."""
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
    serve.add_argument(
        "--account-concurrency",
        type=int,
        default=1000,
        metavar="N",
        help="the account's concurrent executions, as get-account-settings reports them; "
        "put-function-concurrency must leave min(100, N) unreserved, and functions without a "
        "reservation share what is left (past it an invoke is 429 "
        "ConcurrentInvocationLimitExceeded), as on AWS (default: 1000, AWS's default quota)",
    )


def _add_template_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--template",
        metavar="FILE",
        help="a SAM or CloudFormation template (YAML or JSON) to run, within the subset below",
    )
    serve.add_argument(
        "--parameter",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="a template parameter, over its Default (repeatable)",
    )
    serve.add_argument(
        "--strict",
        action="store_true",
        help="refuse the template's types and properties the local stack would skip or ignore",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m aiofanout`` and the ``aiofanout`` script."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from ._demo import run_demo

        return asyncio.run(run_demo(args.items, local=not args.in_process))
    if args.command == "serve":
        return asyncio.run(serve(args))
    if args.command == "build":
        from .deploy._build_command import run_build

        return run_build(args)
    if args.command == "runs":
        from ._runs_cli import run_runs

        return run_runs(args)
    if args.command == "plan":
        from .sim._plan import run_plan

        return run_plan(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


async def serve(args: argparse.Namespace) -> int:
    """Run the embedded stack until Ctrl-C or SIGTERM (both stop every process it started)."""
    from .local import AccountLimits, stack
    from .local._stack import StackFile

    configs = _function_configs(args)
    stack_file = StackFile.load(args.config) if args.config else StackFile()
    template = _template(args)
    _show_function_output()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopped.set)  # as Ctrl-C: clean up, then exit
    try:
        account = AccountLimits(concurrency=args.account_concurrency)
        async with stack(
            functions=configs, port=args.port, moto_port=args.moto_port, account=account
        ) as aws:
            await stack_file.apply(aws)
            async with _deployed(template, aws) as deployed:
                names = [c.name for c in [*configs, *stack_file.functions]]
                if deployed is not None:
                    names += deployed.functions.values()
                    print(deployed.report())
                print(banner(aws, names), flush=True)
                await stopped.wait()
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
    return 0


def _function_configs(args: argparse.Namespace) -> list[FunctionConfig]:
    """The functions of ``--function``, with the other options."""
    from .local import FunctionConfig

    environment = _pairs(args.env, "--env")
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
    return configs


def _pairs(pairs: Sequence[str], flag: str) -> dict[str, str]:
    """``KEY=VALUE`` options as a mapping."""
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} takes KEY=VALUE, got {pair!r}")
        found[key] = value
    return found


def _template(args: argparse.Namespace) -> Template | None:
    """The ``--template``, read and checked before anything starts."""
    if args.template is None:
        if args.parameter or args.strict:
            raise UsageError("--parameter and --strict go with --template")
        return None
    from .local import Template

    parameters = _pairs(args.parameter, "--parameter")
    return Template.load(args.template, parameters=parameters, strict=args.strict)


def _deployed(
    template: Template | None, aws: LocalAws
) -> AbstractAsyncContextManager[DeployedTemplate | None]:
    """The template deployed on ``aws`` while serving (nothing without one)."""
    return contextlib.nullcontext() if template is None else template.deploy(aws)


def _show_function_output() -> None:
    """Functions' output and errors (with function name and request id) on stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("aiofanout.local")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def banner(aws: LocalAws | Any, functions: Sequence[str]) -> str:
    """What serve prints: the endpoints, the environment, commands that work as printed.

    The commands are for the AWS CLI v1 (``pip install awscli``) and v2 alike, except
    ``invoke``: v2 reads ``--payload`` as base64 unless given ``--cli-binary-format
    raw-in-base64-out``, a flag v1 does not have (v1 sends the payload as given).
    """
    from .local._account import MOTO_SERVICES

    lam, moto = aws.lambda_endpoint_url, aws.endpoint_url
    name = functions[0] if functions else "NAME"
    lines = [
        f"moto server:   {moto}",
        f"  serves {', '.join(MOTO_SERVICES.values())}; functions get it as AWS_ENDPOINT_URL_*",
        f"local Lambda:  {lam}",
        "credentials: AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing, us-east-1",
        f"functions: {', '.join(functions) or '(none yet: aws lambda create-function)'}",
        "environment for boto3 and aioboto3 (botocore 1.31+ reads the AWS_ENDPOINT_URL* names):",
        f"  export AWS_ENDPOINT_URL_LAMBDA={lam} AWS_ENDPOINT_URL={moto} "
        "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1",
        "the AWS CLI: pass --endpoint-url on every command (the CLI v1 ignores AWS_ENDPOINT_URL);",
        "try (AWS CLI v1 as printed; v2: add --cli-binary-format raw-in-base64-out to invoke):",
        f"  aws --endpoint-url {lam} lambda list-functions",
        f"  aws --endpoint-url {lam} lambda invoke --function-name {name} --payload '{{}}' "
        "--log-type Tail out.json",
        f"  aws --endpoint-url {moto} sqs list-queues",
        "serving until Ctrl-C (or SIGTERM)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
