"""The adaptive controller at scale, in the simulator (issue 23), in one run.

    python benchmarks/sim_scale.py [--write] [--items 100000]

Every run is the real engine and ``LambdaTarget`` against ``aiofanout.sim.SimulatedAws`` on a
virtual clock (seeded): functions of LogNormal(1 s, 0.3) runs, 250 ms cold starts, round
trips drawn from 10-30 ms (so calls sent together arrive in any order), the account's
concurrency 1,000.

(1) One fan-out of ``--items`` against the account: fixed caps of 1,000 and 5,000, adaptive
    with a cap of 5,000.
(2) Three fan-outs of ``--items`` side by side (three teams, three functions, one account),
    each adaptive with a cap of 1,000: each one's share of the account, and the 429s per call
    (those of the opening second apart: three caps of 1,000 against 1,000 refuse 2,000 calls).
(3) One adaptive fan-out (cap 1,000) whose function's reserved concurrency goes from 600 to
    200 at 10 s: the limit follows it down.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import Any

from _bench import arguments, machine, publish, table

from aiofanout import FanoutResult, LambdaTarget, Status, dispatch_many
from aiofanout.sim import LogNormal, SimulatedAws, Uniform, run_in_virtual_time

DURATION = LogNormal(1.0, 0.3)
LATENCY = Uniform(0.01, 0.03)
SEED = 23


def simulated(**options: Any) -> SimulatedAws:
    return SimulatedAws(account_concurrency=1000, seed=SEED, latency=LATENCY, **options)


async def one(
    aws: SimulatedAws, name: str, items: int, cap: int, **options: Any
) -> tuple[FanoutResult[Any], float]:
    target = LambdaTarget(name, task=None, client=aws.lambda_client())
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await dispatch_many(
        target, itertools.repeat({"i": 0}, items), concurrency=cap, **options
    )
    return result, loop.time() - started


def calls(aws: SimulatedAws, name: str) -> tuple[int, int]:
    stats = aws.functions[name].stats
    return stats.invocations, sum(stats.throttles.values())


async def single(items: int, cap: int, adaptive: bool) -> list[str]:
    async with simulated() as aws:
        aws.function("f", duration=DURATION, timeout=60)
        result, wall = await one(aws, "f", items, cap, adaptive=adaptive)
        ran, throttles = calls(aws, "f")
    counts = result.counts
    limit = result.limit
    return [
        f"{'adaptive' if adaptive else 'fixed'}, cap {cap:,}",
        f"{wall:,.1f}",
        f"{counts[Status.SUCCEEDED]:,}",
        f"{counts[Status.FAILED]:,}",
        f"{throttles:,}",
        f"{throttles / (ran + throttles):.1%}",
        f"{result.retries:,}",
        "-" if limit is None else f"{limit.min:,} / {limit.max:,} / {limit.final:,}",
        f"{items / wall:,.0f}",
    ]


async def shared(items: int) -> tuple[list[list[str]], str]:
    async with simulated() as aws:
        for name in ("a", "b", "c"):
            aws.function(name, duration=DURATION, timeout=60)
        runs = await asyncio.gather(
            *(one(aws, name, items, 1000, adaptive=True) for name in ("a", "b", "c"))
        )
        peak = max(aws.timeline.busy)
    rows = []
    total_calls = total_throttles = 0
    for name, (result, wall) in zip("abc", runs, strict=True):
        ran, throttles = calls(aws, name)
        total_calls += ran + throttles
        total_throttles += throttles
        busy_seconds = aws.functions[name].stats.billed_seconds
        rows.append(
            [
                name,
                f"{wall:,.1f}",
                f"{result.counts[Status.SUCCEEDED]:,}",
                f"{busy_seconds / wall:,.0f}",
                f"{throttles:,}",
                f"{throttles / (ran + throttles):.2%}",
                f"{result.limit.min if result.limit else '-'} / {result.limit.final if result.limit else '-'}",
            ]
        )
    opening = aws.timeline.throttled[0]
    summary = (
        f"429s over all calls: {total_throttles / total_calls:.2%} (bar: under 1%), "
        f"{opening:,} of them in the opening second, {total_throttles - opening:,} after it "
        f"({(total_throttles - opening) / total_calls:.3%}); the account's peak concurrency "
        f"{peak:,}."
    )
    return rows, summary


async def lowered(items: int) -> tuple[list[list[str]], str]:
    seen: list[Any] = []
    async with simulated() as aws:
        function = aws.function("f", duration=DURATION, timeout=60, reserved_concurrency=600)

        async def lower() -> None:
            await asyncio.sleep(10)
            await aws.lambda_client().put_function_concurrency(
                FunctionName="f", ReservedConcurrentExecutions=200
            )

        lowering = asyncio.create_task(lower())
        result, wall = await one(aws, "f", items, 1000, adaptive=True, on_progress=seen.append)
        await lowering
        ran, throttles = calls(aws, "f")
        busy = aws.timeline.busy
    rows = []
    for second in (5, 9, 11, 12, 15, 20, 30, 45, int(wall) - 1):
        if second >= len(busy):
            continue
        snapshot = next((p for p in seen if p.elapsed >= second), seen[-1])
        rows.append(
            [
                str(second),
                "600" if second < 10 else "200",
                f"{snapshot.limit.current if snapshot.limit else '-'}",
                f"{busy[second]:,}",
                f"{snapshot.limit.throttles if snapshot.limit else '-'}",
            ]
        )
    summary = (
        f"{items:,} items, wall {wall:,.1f} s, {result.counts[Status.SUCCEEDED]:,} succeeded, "
        f"{result.counts[Status.FAILED]:,} failed, {throttles:,} 429s of {ran + throttles:,} calls "
        f"({throttles / (ran + throttles):.2%}); {function.stats.throttles.most_common(1)}"
    )
    return rows, summary


async def main(items: int) -> str:
    random.seed(SEED)  # the engine's backoff jitter: the whole run repeats
    started = time.perf_counter()
    singles = [
        await single(items, 1000, False),
        await single(items, 5000, False),
        await single(items, 5000, True),
    ]
    three, three_summary = await shared(items)
    moved, moved_summary = await lowered(items // 2)
    real = time.perf_counter() - started
    return "\n\n".join(
        [
            f"Simulated: account concurrency 1,000, runs LogNormal(median 1 s, sigma 0.3), 250 ms "
            f"cold starts, round trips drawn from 10-30 ms, seed {SEED}; simulated in {real:.0f} s of wall "
            f"time on {machine()}.",
            f"(1) One fan-out of {items:,} items.",
            table(
                [
                    "variant",
                    "wall s",
                    "succeeded",
                    "failed",
                    "429s",
                    "429s / calls",
                    "retries",
                    "limit min / max / final",
                    "items/s",
                ],
                singles,
            ),
            f"(2) Three adaptive fan-outs of {items:,} items side by side, cap 1,000 each, "
            "three functions of one account. Mean concurrency: the function's billed seconds "
            "over the fan-out's wall time. " + three_summary,
            table(
                [
                    "fan-out",
                    "wall s",
                    "succeeded",
                    "mean concurrency",
                    "429s",
                    "429s / calls",
                    "limit min / final",
                ],
                three,
            ),
            "(3) Reserved concurrency lowered mid run: 600, then 200 at 10 s; adaptive, cap 1,000. "
            + moved_summary,
            table(["t s", "reserved", "limit", "environments busy", "429s so far"], moved),
        ]
    )


if __name__ == "__main__":
    args = arguments(__doc__, items=100_000)
    publish("sim-scale", run_in_virtual_time(main(args.items)), args.write)
