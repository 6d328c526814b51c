"""The cost of ``@app.task(idempotent=True)`` per task, beside the same task without it.

    python benchmarks/idempotency.py [--write] [--repeats 3] [--items 400]

On the local stack (a moto server with DynamoDB, the local Lambda runtime with 2 execution
environments): (a) ``dispatch_many(LambdaTarget)`` at concurrency 8 through the runtime to a
worker function of this very module (``idempotency.lambda_handler``), a trivial task with and
without ``idempotent=True``; (b) the same tasks in-process (``app.run_envelope`` one at a time,
the store on the moto server), which shows the store's own cost without the invoke around it.
Every item is new (a fresh key): the idempotent path pays one conditional ``PutItem`` and one
``UpdateItem`` per task. Prints a markdown table: tasks/s and ms per task, median (min-max).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

from _bench import arguments, machine, publish, table

from aiofanout import LambdaTarget, dispatch_many
from aiofanout.worker import App, DynamoDBStore, Task

HERE = Path(__file__).resolve().parent
CONCURRENCY = 8


def build_app(table: str, endpoint: str | None) -> tuple[App, Task[..., int], Task[..., int]]:
    """The worker app: a trivial task, without and with ``idempotent=True``."""
    app = App(
        "bench",
        idempotency=DynamoDBStore(table=table, endpoint_url=endpoint, region_name="us-east-1"),
    )

    @app.task
    async def plain(x: int) -> int:
        return x + 1

    @app.task(idempotent=True)
    async def once(x: int) -> int:
        return x + 1

    return app, plain, once


# What the local runtime's environments import (handler ``idempotency.lambda_handler``); the
# store opens nothing until a task runs, and there the environment names the local endpoint.
lambda_handler = build_app(
    os.environ.get("IDEMPOTENCY_TABLE", "unset"), os.environ.get("IDEMPOTENCY_ENDPOINT")
)[0].lambda_handler


async def through_lambda(endpoint: str, name: str, items: range) -> float:
    target = LambdaTarget("idem", task=name, endpoint_url=endpoint, region_name="us-east-1")
    started = time.perf_counter()
    result = await dispatch_many(target, items, concurrency=CONCURRENCY, timeout=30)
    elapsed = time.perf_counter() - started
    assert result.ok, result.failures()[:3]
    return elapsed


async def in_process(app: App, task: Task[..., int], items: range) -> float:
    envelopes = [task.envelope(x) for x in items]
    started = time.perf_counter()
    for envelope in envelopes:
        assert (await app.run_envelope(envelope)).error is None
    return time.perf_counter() - started


def cell(samples: list[float], n: int) -> tuple[str, str]:
    rates = sorted(n / s for s in samples)
    ms = sorted(1000 * s / n for s in samples)
    mid = len(samples) // 2
    return (
        f"{rates[mid]:.0f} ({rates[0]:.0f}-{rates[-1]:.0f})",
        f"{ms[mid]:.2f} ({ms[0]:.2f}-{ms[-1]:.2f})",
    )


async def measure(repeats: int, n: int) -> dict[str, list[float]]:
    from aiofanout.local import FunctionConfig, stack

    samples: dict[str, list[float]] = {}
    async with stack() as aws:
        table = f"bench-{uuid.uuid4().hex[:8]}"
        env = {"IDEMPOTENCY_TABLE": table, "IDEMPOTENCY_ENDPOINT": aws.endpoint_url}
        os.environ.update(env)
        config = FunctionConfig(
            "idem",
            "idempotency.lambda_handler",
            timeout=30,
            environment=env,
            code_paths=[str(HERE)],
            reserved_concurrency=2,
            throttle_after=30,
        )
        aws.add_function(config)
        app, plain, once = build_app(table, aws.endpoint_url)
        await through_lambda(aws.lambda_endpoint_url, "once", range(-50, 0))  # warm up, table
        start = 0
        try:
            for _ in range(repeats):
                for label, task in (("without", plain), ("with idempotent=True", once)):
                    # Fresh items every time: each idempotent run claims a new key.
                    remote, local = range(start, start + n), range(start + n, start + 2 * n)
                    start += 2 * n
                    seconds = await through_lambda(aws.lambda_endpoint_url, task.name, remote)
                    samples.setdefault(f"(a) local Lambda, {label}", []).append(seconds)
                    seconds = await in_process(app, task, local)
                    samples.setdefault(f"(b) in-process, store on moto, {label}", []).append(
                        seconds
                    )
        finally:
            await app.runner.aclose()
            assert app.idempotency is not None
            await app.idempotency.aclose()
    return samples


def main() -> None:
    args = arguments(__doc__, items=400)
    samples = asyncio.run(measure(args.repeats, args.items))
    rows = [[row, *cell(samples[row], args.items)] for row in sorted(samples)]
    body = (
        f"{args.items} tasks per sample, {args.repeats} samples, median (min-max), {machine()}.\n\n"
        + table(["variant", "tasks/s", "ms per task"], rows)
        + "\n"
    )
    publish("idempotency", body, args.write)


if __name__ == "__main__":
    main()
