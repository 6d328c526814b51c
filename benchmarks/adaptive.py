"""Concurrency that follows throttling, on the local Lambda runtime, in one run.

    python benchmarks/adaptive.py [--write] [--items 2000]

A function with reserved concurrency 8 whose task sleeps 50 ms; 2,000 items at cap 64:
(a) a fixed cap of 64 with the default retries (3 attempts), (b) ``adaptive=True``, (c) the
oracle, a fixed cap of 8. Then one adaptive run while the reserved concurrency goes from 8 to 16
and down to 4: the limit over time.

Each variant has its own ``LambdaTarget``, so (b) does not start from a limit learned before. The
429s are the runtime's own count (``stats(name)["throttles"]``).

The reserved concurrency changes through the Lambda API, ``PutFunctionConcurrency``, as on AWS:
a raise lets new environments start at once; a decrease retires environments above the new
number as they come free, so no invocation is cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from _bench import arguments, machine, publish, table

import aiofanout
from aiofanout import FanoutResult, LambdaTarget, Progress, Status
from aiofanout.local import FunctionConfig, stack

FUNCTION = "sleepy"
CODE = str(Path(__file__).with_name("functions"))
CAP = 64
RESERVED = 8
PHASES = ((0.0, 8), (3.0, 16), (6.0, 4))  # (seconds into the run, reserved concurrency)


async def set_reserved(aws: Any, name: str, reserved: int) -> None:
    """Change a function's reserved concurrency through the Lambda API."""
    async with aws.client("lambda") as client:
        await client.put_function_concurrency(
            FunctionName=name, ReservedConcurrentExecutions=reserved
        )


def target_for(aws: Any) -> LambdaTarget:
    return LambdaTarget(FUNCTION, task=None, endpoint_url=aws.lambda_endpoint_url)


async def run(
    aws: Any,
    cap: int,
    items: int,
    during: contextlib.AbstractAsyncContextManager[object] | None = None,
    **options: Any,
) -> tuple[FanoutResult[Any], float, int]:
    """One fan-out; its result, its wall time and the 429s the runtime answered meanwhile.

    The target's client is made first (botocore loads its models for about a second, blocking
    the loop), so the wall time is the fan-out's alone.
    """
    target = target_for(aws)
    async with target.opened(concurrency=cap, timeout=30), during or contextlib.nullcontext():
        before = aws.runtime.stats(FUNCTION)["throttles"]
        started = time.perf_counter()
        result = await aiofanout.dispatch_many(
            target, [{"i": i} for i in range(items)], concurrency=cap, timeout=30, **options
        )
        wall = time.perf_counter() - started
    return result, wall, aws.runtime.stats(FUNCTION)["throttles"] - before


def row(name: str, result: FanoutResult[Any], wall: float, throttles: int) -> list[str]:
    counts = result.counts
    limit = result.limit
    return [
        name,
        f"{wall:.2f}",
        str(throttles),
        str(counts[Status.SUCCEEDED]),
        str(counts[Status.FAILED]),
        str(result.retries),
        "-" if limit is None else f"{limit.min} / {limit.final}",
    ]


async def compare(aws: Any, items: int) -> str:
    """(a), (b), (c): the table and the bars."""
    a = await run(aws, CAP, items)
    b = await run(aws, CAP, items, adaptive=True)
    c = await run(aws, RESERVED, items)
    rows = [
        row(f"(a) fixed cap {CAP}, default retries", *a),
        row(f"(b) adaptive, cap {CAP}", *b),
        row(f"(c) oracle: fixed cap {RESERVED}", *c),
    ]
    headers = ["variant", "wall s", "429s", "succeeded", "failed", "retries", "limit min / final"]
    share, ratio = b[2] / max(1, a[2]), b[1] / c[1]
    bars = table(
        ["bar", "measured", "met"],
        [
            ["(b) 429s at most 10% of (a)'s", f"{share:.1%}", str(share <= 0.10)],
            ["(b) wall time within 1.15x of (c)", f"{ratio:.2f}x", str(ratio <= 1.15)],
        ],
    )
    return table(headers, rows) + "\n\n" + bars


@contextlib.asynccontextmanager
async def changing_reserved(aws: Any, marks: list[tuple[float, int, int]]) -> AsyncIterator[None]:
    """Raise, then lower the reserved concurrency on the schedule of PHASES.

    ``marks`` gets (seconds in, reserved concurrency, 429s so far) at each change.
    """

    async def schedule() -> None:
        started = time.perf_counter()
        for at, reserved in PHASES:
            await asyncio.sleep(max(0.0, at - (time.perf_counter() - started)))
            await set_reserved(aws, FUNCTION, reserved)
            marks.append((at, reserved, aws.runtime.stats(FUNCTION)["throttles"]))

    task = asyncio.create_task(schedule())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await set_reserved(aws, FUNCTION, RESERVED)


async def follow(aws: Any, items: int) -> str:
    """An adaptive run while the reserved concurrency moves: the limit over time."""
    seen: list[Progress] = []
    marks: list[tuple[float, int, int]] = []
    before = aws.runtime.stats(FUNCTION)["throttles"]
    result, wall, throttles = await run(
        aws, CAP, items, changing_reserved(aws, marks), adaptive=True, on_progress=seen.append
    )
    reserved_at = [(at, reserved) for at, reserved, _ in marks]
    rows = []
    for second in range(int(wall) + 1):
        t = float(second)
        snapshot = next((p for p in seen if p.elapsed >= t), seen[-1])
        reserved = [r for at, r in reserved_at if at <= snapshot.elapsed][-1]
        assert snapshot.limit is not None
        rows.append(
            [
                f"{snapshot.elapsed:.1f}",
                str(reserved),
                str(snapshot.limit.current),
                str(snapshot.in_flight),
                str(snapshot.limit.throttles),
                str(snapshot.done),
            ]
        )
    phases = []
    counts = [m[2] for m in marks] + [before + throttles]
    for (at, reserved, _), start, end in zip(marks, counts, counts[1:], strict=False):
        phases.append(f"{reserved} from {at:.0f} s: {end - start} 429s")
    header = (
        f"{items} items, cap {CAP}, adaptive; reserved concurrency "
        + ", then ".join(f"{r} at {at:.0f} s" for at, r in PHASES)
        + f". Wall {wall:.2f} s, {result.counts[Status.SUCCEEDED]} succeeded, "
        f"{result.counts[Status.FAILED]} failed; 429s by phase: " + "; ".join(phases) + "."
    )
    over_time = table(["t s", "reserved", "limit", "taken, not done", "429s so far", "done"], rows)
    return header + "\n\n" + over_time


async def main() -> None:
    args = arguments(__doc__, items=2000)
    config = FunctionConfig(
        FUNCTION, "sleepy.handler", code_paths=[CODE], reserved_concurrency=RESERVED, timeout=10
    )
    async with stack(functions=[config]) as aws:
        # Warm every environment up, so no variant pays the cold starts alone.
        await run(aws, RESERVED, 4 * RESERVED)
        comparison = await compare(aws, args.items)
        changing = await follow(aws, args.items)
    body = (
        f"Local runtime, a function with reserved concurrency {RESERVED} whose task sleeps "
        f"50 ms, {args.items:,} items, {machine()}.\n\n"
        f"{comparison}\n\n{changing}\n"
    )
    publish("adaptive", body, args.write)


if __name__ == "__main__":
    asyncio.run(main())
