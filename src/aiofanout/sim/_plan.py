"""``python -m aiofanout plan``: a fan-out run against :class:`SimulatedAws` on a virtual clock.

The real engine and the real ``LambdaTarget`` (RequestResponse or Event invokes, or
``SqsTarget`` and an event source mapping) run the scenario; only AWS is simulated. What comes
out is what the run did: its wall time, the peak concurrency, cold starts, 429s, retries,
outcomes, and what it would cost; for Event invokes, also what Lambda's asynchronous queue did
after the sender was done.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import sys
import time
from collections import Counter
from typing import Any

from .._errors import UsageError
from ._clock import run_in_virtual_time
from ._cost import GB_SECOND_ARM64, GB_SECOND_X86_64, LAMBDA_REQUEST, SQS_REQUEST, Prices
from ._durations import Duration, Fixed, LogNormal, Uniform
from ._simulated_aws import SimulatedAws
from ._svg import timeline_svg

__all__ = ["add_plan", "run_plan"]

PLAN_DESCRIPTION = """\
Predict a fan-out before you run it: the real engine and target run against a simulated AWS
(Lambda and SQS as AWS documents them: account and reserved concurrency, 1,000 new environments
per function per 10 s, cold starts, 429s with AWS's reasons, the invoke rate quota, the
asynchronous queue with its retries and event age) on a virtual clock, so an hour of fan-out
takes seconds. Seeded: the same command prints the same plan.

prices (USD, us-east-1 list prices, override with --price-*): Lambda $0.20 per million
requests, $0.0000166667 per GB-second on x86_64 and $0.0000133334 on arm64 (init included),
SQS $0.40 per million requests.

targets (--target):
  lambda  one RequestResponse invoke per item: the sender waits for each run
  event   one Event invoke per item: Lambda answers 202 and queues it; the plan shows the
          sender's time to hand every event over (sender_seconds) and when the last event
          has run (wall_seconds), 429s at the sender (the invoke rate quota) and inside the
          queue (no concurrency free: retried by Lambda for up to --maximum-event-age),
          function errors retried --maximum-retry-attempts times, and events dropped
  sqs     SendMessageBatch to a queue an event source mapping drains into the function

examples:
  python -m aiofanout plan --items 100000 --duration 0.5 --concurrency 1000 --adaptive
  python -m aiofanout plan --items 100000 --duration 0.5 --concurrency 200 --target event
  python -m aiofanout plan --items 1000000 --duration 0.2 --concurrency 5000 \\
      --account-concurrency 3000 --memory 1024 --json --svg plan.svg
"""


def add_plan(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``plan`` to the parser's subcommands."""
    parser = commands.add_parser(
        "plan",
        help="predict a fan-out's time, throttling and cost on a simulated AWS",
        description=PLAN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--items", type=int, required=True, help="items to fan out")
    add(
        "--target",
        choices=["lambda", "event", "sqs"],
        default="lambda",
        help="lambda: one RequestResponse invoke per item; event: one Event invoke per item, "
        "run by Lambda's asynchronous queue; sqs: SendMessageBatch to a queue an event source "
        "mapping drains into the function (default: lambda)",
    )
    add("--duration", type=float, default=0.1, help="the function's run, seconds (default 0.1)")
    add(
        "--distribution",
        choices=["fixed", "uniform", "lognormal"],
        default="fixed",
        help="fixed; uniform within duration x (1 +- spread); lognormal: median duration, "
        "sigma spread (default: fixed)",
    )
    add("--spread", type=float, default=0.5, help="of the distribution (default 0.5)")
    add("--concurrency", type=int, required=True, help="the fan-out's cap")
    add("--adaptive", action="store_true", help="adaptive=True: follow the throttling")
    add("--retries", type=int, default=3, help="attempts per item (default 3, the engine's)")
    add("--timeout", type=float, default=None, help="the fan-out's attempt timeout, seconds")
    _add_aws_options(parser)
    _add_output_options(parser)


def _add_aws_options(parser: argparse.ArgumentParser) -> None:
    """The simulated account and function, and the prices."""
    add = parser.add_argument
    add("--account-concurrency", type=int, default=1000, help="(default: 1000, AWS's)")
    add("--reserved-concurrency", type=int, default=None, help="the function's (default none)")
    add("--memory", type=int, default=128, help="MB (default 128)")
    add("--architecture", choices=["x86_64", "arm64"], default="x86_64")
    add("--function-timeout", type=float, default=900.0, help="seconds (default 900)")
    add("--cold-start", type=float, default=0.25, help="init seconds (default 0.25)")
    add(
        "--latency",
        type=float,
        default=0.02,
        help="each call's round trip besides the run, seconds (default 0.02)",
    )
    add("--failure-rate", type=float, default=0.0, help="share of runs that fail (default 0)")
    add("--batch-size", type=int, default=10, help="the SQS mapping's (default 10)")
    add(
        "--maximum-retry-attempts",
        type=int,
        default=2,
        help="--target event: Lambda's retries of a function error, 0..2 (default 2, AWS's)",
    )
    add(
        "--maximum-event-age",
        type=float,
        default=21_600.0,
        help="--target event: seconds an event may wait in the queue, 60..21600 "
        "(default 21600, AWS's)",
    )
    add("--seed", type=int, default=0, help="the simulation's seed (default 0)")
    add("--price-request", type=float, default=LAMBDA_REQUEST, help="USD per Lambda request")
    add(
        "--price-gb-second",
        type=float,
        default=None,
        help="USD per GB-second (default: the architecture's list price)",
    )
    add("--price-sqs-request", type=float, default=SQS_REQUEST, help="USD per SQS request")


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--json", action="store_true", help="print one JSON object (for scripts and CI)")
    add("--svg", metavar="FILE", help="write concurrency, throughput and 429s over time")
    add("--no-progress", action="store_true", help="no progress bar (on stderr)")


def run_plan(args: argparse.Namespace) -> int:
    """Run the scenario of ``args``; print the plan."""
    _check(args)
    started = time.perf_counter()
    plan, aws = run_in_virtual_time(_simulate(args))
    plan["simulated_in_seconds"] = round(time.perf_counter() - started, 2)
    if args.svg:
        title = f"{args.items:,} items, cap {args.concurrency}" + (
            ", adaptive" if args.adaptive else ""
        )
        if args.target != "lambda":  # the function's side: an Event queue's or a mapping's runs
            title += f", --target {args.target}"
        with open(args.svg, "w", encoding="utf-8") as out:
            out.write(timeline_svg(aws.timeline, title))
    if args.json:
        print(json.dumps(plan, indent=2))
    else:
        print(_human(plan))
    return 0


def _check(args: argparse.Namespace) -> None:
    for name in ("items", "concurrency", "retries", "account_concurrency"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    if args.duration < 0:
        raise UsageError("--duration must be >= 0 seconds")
    if args.maximum_retry_attempts not in (0, 1, 2):
        raise UsageError("--maximum-retry-attempts is 0, 1 or 2 (Lambda's limits)")
    if not 60 <= args.maximum_event_age <= 21_600:
        raise UsageError("--maximum-event-age is 60..21600 seconds (Lambda's limits)")


def _duration(args: argparse.Namespace) -> Duration:
    d, spread = args.duration, args.spread
    if args.distribution == "uniform":
        return Uniform(max(0.0, d * (1 - spread)), d * (1 + spread))
    if args.distribution == "lognormal":
        return LogNormal(d, spread)
    return Fixed(d)


def _prices(args: argparse.Namespace) -> Prices:
    gb = args.price_gb_second
    return Prices(
        lambda_request=args.price_request,
        gb_second_x86_64=gb if gb is not None else GB_SECOND_X86_64,
        gb_second_arm64=gb if gb is not None else GB_SECOND_ARM64,
        sqs_request=args.price_sqs_request,
    )


async def _simulate(args: argparse.Namespace) -> tuple[dict[str, Any], SimulatedAws]:
    from .. import LambdaTarget, Retry, SqsTarget, dispatch_many

    random.seed(args.seed)  # the engine's backoff jitter draws from the global generator
    async with SimulatedAws(
        account_concurrency=args.account_concurrency, seed=args.seed, latency=args.latency
    ) as aws:
        function = aws.function(
            "planned", duration=_duration(args), cold_start=args.cold_start,
            reserved_concurrency=args.reserved_concurrency, memory=args.memory,
            architecture=args.architecture, timeout=args.function_timeout,
            failure_rate=args.failure_rate, maximum_retry_attempts=args.maximum_retry_attempts,
            maximum_event_age=args.maximum_event_age,
        )  # fmt: skip
        queue = None
        if args.target == "sqs":
            queue = aws.queue("planned", visibility_timeout=max(30.0, 6 * args.function_timeout))
            aws.event_source_mapping(queue, function, batch_size=args.batch_size)
            target: Any = SqsTarget(queue.url, task=None, client=aws.sqs_client())
        else:
            target = LambdaTarget(
                "planned", task=None, client=aws.lambda_client(),
                invocation_type="Event" if args.target == "event" else "RequestResponse",
            )  # fmt: skip
        loop = asyncio.get_running_loop()
        with _progress(args) as show:
            result = await dispatch_many(
                target, itertools.repeat({"item": 0}, args.items),
                concurrency=args.concurrency, adaptive=args.adaptive,
                retry=Retry(attempts=args.retries), timeout=args.timeout, on_progress=show,
            )  # fmt: skip
            sent = loop.time()
            await aws.drain()  # the Event invokes Lambda queued (none for the other targets)
            while queue is not None and (len(queue) or queue.in_flight):  # noqa: ASYNC110
                # Looked at once a virtual second, as a user polls the queue's attributes.
                await asyncio.sleep(1.0)
        wall = loop.time()
    return _plan(args, aws, result, wall, sent), aws


def _plan(
    args: argparse.Namespace, aws: SimulatedAws, result: Any, wall: float, sent: float
) -> dict[str, Any]:
    from .. import Status

    function = aws.functions["planned"]
    stats = function.stats
    prices = _prices(args)
    cost = aws.cost(prices)
    counts = result.counts
    plan: dict[str, Any] = {
        "wall_seconds": round(wall, 3),
        "sender_seconds": round(sent, 3),
        "peak_concurrency": stats.peak_concurrency,
        "cold_starts": stats.cold_starts,
        "throttles": sum(stats.throttles.values()),
        "throttles_by_reason": dict(sorted(stats.throttles.items())),
        "retries": result.retries,
        "succeeded": counts[Status.SUCCEEDED],
        "failed": counts[Status.FAILED],
        "timed_out": counts[Status.TIMED_OUT],
        "invocations": stats.invocations,
        "cost_usd": round(cost.total, 6),
        "cost_breakdown_usd": {k: round(v, 6) for k, v in cost.as_dict().items()},
        "prices_usd": {name: round(price, 12) for name, price in prices.as_dict().items()},
        "adaptive_limit": _adaptive_limit(result.limit),
        "scenario": {
            key: value
            for key, value in sorted(vars(args).items())
            if key not in ("command", "json", "svg", "no_progress")
        },
    }
    if args.target == "event":
        plan["events"] = _events(aws, counts[Status.SUCCEEDED])
    return plan


def _adaptive_limit(limit: Any) -> dict[str, int] | None:
    """The adaptive limit's final, lowest and highest values (``None``: not adaptive)."""
    if limit is None:
        return None
    return {"final": limit.final, "min": limit.min, "max": limit.max}


def _events(aws: SimulatedAws, handed_over: int) -> dict[str, Any]:
    """What Lambda's asynchronous queue did with the Event invokes it answered 202."""
    queued = aws.async_invokes
    dropped = Counter(record["requestContext"]["condition"] for record in aws.failures("planned"))
    sender_throttles = sum(aws.functions["planned"].stats.throttles.values()) - queued.throttles
    return {
        "handed_over": handed_over,
        "ran": queued.delivered,
        "retried": queued.retries,
        "dropped": sum(dropped.values()),
        "dropped_by_condition": dict(sorted(dropped.items())),
        "sender_throttles": sender_throttles,
        "queue_throttles": queued.throttles,
    }


class _progress:  # noqa: N801 - used as a context manager, named for what it shows
    """A rich progress bar on stderr for the simulation (none with --json off a terminal)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.items = args.items
        self.enabled = not args.no_progress and sys.stderr.isatty()
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.bar = Progress(
            TextColumn("simulating"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[at]}"), console=Console(stderr=True), transient=True,
        )  # fmt: skip
        self.bar.__enter__()
        self.task = self.bar.add_task("plan", total=self.items, at="")
        return self.show

    def show(self, progress: Any) -> None:
        self.bar.update(self.task, completed=progress.done, at=f"{progress.elapsed:,.0f} s")

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _human(plan: dict[str, Any]) -> str:
    lines = [
        f"wall time        {plan['wall_seconds']:,.1f} s (simulated in "
        f"{plan['simulated_in_seconds']} s)",
    ]
    events = plan.get("events")
    if events is not None:
        lines += [
            f"handed over      {events['handed_over']:,} events in {plan['sender_seconds']:,.1f} s"
            f" (429s at the sender {events['sender_throttles']:,})",
            f"ran              {events['ran']:,}   retried {events['retried']:,}   "
            f"dropped {events['dropped']:,}   429s in the queue {events['queue_throttles']:,}",
        ]
        lines += [f"  {c}: {n:,}" for c, n in events["dropped_by_condition"].items()]
    lines += [
        f"succeeded        {plan['succeeded']:,}   failed {plan['failed']:,}   "
        f"timed out {plan['timed_out']:,}",
        f"peak concurrency {plan['peak_concurrency']:,}   cold starts {plan['cold_starts']:,}",
        f"429s             {plan['throttles']:,}   retries {plan['retries']:,}",
        f"cost             ${plan['cost_usd']:,.4f}",
    ]
    for reason, count in plan["throttles_by_reason"].items():
        lines.append(f"  {reason}: {count:,}")
    return "\n".join(lines)
