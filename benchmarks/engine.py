"""The engine against the usual ways to fan out in asyncio, side by side, in one run.

    python benchmarks/engine.py [--write] [--repeats 5] [--jobs 100000]

100k jobs that ``await asyncio.sleep(0)``, cap 1000, medians of 5 with min-max, in us per job;
peak RSS of each variant in a fresh process; and peak RSS of ``stream`` at 10k, 100k and 1M items.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

import aiometer
from _bench import (
    Measure,
    child_peak_rss_mb,
    machine,
    own_peak_rss_mb,
    publish,
    table,
    timed,
)

import aiofanout

CAP = 1000


async def job(_: int) -> None:
    await asyncio.sleep(0)


async def gather_semaphore(n: int) -> None:
    sem = asyncio.Semaphore(CAP)

    async def one(i: int) -> None:
        async with sem:
            await job(i)

    await asyncio.gather(*(one(i) for i in range(n)))


async def worker_pool(n: int) -> None:
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await job(i)

    await asyncio.gather(*(worker() for _ in range(CAP)))


async def worker_pool_timeout(n: int) -> None:
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            async with asyncio.timeout(30):
                await job(i)

    await asyncio.gather(*(worker() for _ in range(CAP)))


async def aiometer_amap(n: int) -> None:
    async with aiometer.amap(job, range(n), max_at_once=CAP) as results:
        async for _ in results:
            pass


async def ours(n: int) -> None:
    result = await aiofanout.dispatch_many(job, range(n), concurrency=CAP)
    assert result.ok
    assert len(result) == n


async def ours_timeout_retry(n: int) -> None:
    result = await aiofanout.dispatch_many(
        job, range(n), concurrency=CAP, timeout=30, retry=aiofanout.Retry(attempts=3)
    )
    assert result.ok
    assert len(result) == n


async def ours_stream(n: int) -> None:
    done = 0
    async with aiofanout.stream(job, range(n), concurrency=CAP) as outcomes:
        async for _ in outcomes:
            done += 1
    assert done == n


VARIANTS: dict[str, Callable[[int], Awaitable[None]]] = {
    "(a) gather + Semaphore": gather_semaphore,
    "(b) worker pool": worker_pool,
    "(c) aiometer.amap": aiometer_amap,
    "(d) worker pool + asyncio.timeout": worker_pool_timeout,
    "aiofanout dispatch_many": ours,
    "aiofanout dispatch_many, timeout + Retry": ours_timeout_retry,
    "aiofanout stream": ours_stream,
}


def child(variant: str, n: int) -> None:
    """Run one variant once in this (fresh) process and print its peak RSS in MiB."""
    asyncio.run(VARIANTS[variant](n))
    print(own_peak_rss_mb())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="rewrite benchmarks/README.md")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    n = args.jobs
    measures: dict[str, Measure] = {}
    for _ in range(args.repeats):  # interleave the variants so drift hits all of them alike
        for name, fn in VARIANTS.items():
            sample = timed(lambda fn=fn: asyncio.run(fn(n))) / n * 1e6
            measures.setdefault(name, Measure(name, [])).samples.append(sample)
            print(f"  {name}: {sample:.2f} us/job", file=sys.stderr)
    rss = {name: child_peak_rss_mb([__file__, "--child", name, str(n)]) for name in VARIANTS}
    pool = measures["(b) worker pool"].median
    pool_t = measures["(d) worker pool + asyncio.timeout"].median
    rows = []
    for name, m in measures.items():
        rows.append(
            [
                name,
                m.cell(),
                f"{m.median / pool:.2f}x",
                f"{m.median / pool_t:.2f}x",
                f"{rss[name]:.0f}",
            ]
        )
    speed = table(["variant", "us/job, median (min-max)", "vs (b)", "vs (d)", "peak RSS MiB"], rows)

    memory_rows = []
    stream_rss = {}
    for size in (10_000, 100_000, 1_000_000):
        samples = [
            child_peak_rss_mb([__file__, "--child", "aiofanout stream", str(size)])
            for _ in range(3)
        ]
        m = Measure(str(size), samples)
        stream_rss[size] = m.median
        memory_rows.append([f"{size:,}", m.cell(fmt="{:.1f}")])
    growth = stream_rss[1_000_000] - stream_rss[10_000]
    memory = table(["items through `stream`", "peak RSS MiB, median of 3 (min-max)"], memory_rows)

    ours_m = measures["aiofanout dispatch_many"].median
    ours_t = measures["aiofanout dispatch_many, timeout + Retry"].median
    bars = table(
        ["bar", "measured", "met"],
        [
            [
                "dispatch_many within 1.5x of (b)",
                f"{ours_m / pool:.2f}x",
                str(ours_m / pool <= 1.5),
            ],
            [
                "timeout + Retry within 1.5x of (b), the bare pool (aim 1.2x)",
                f"{ours_t / pool:.2f}x",
                str(ours_t / pool <= 1.5),
            ],
            [
                "timeout + Retry within 1.5x of (d)",
                f"{ours_t / pool_t:.2f}x",
                str(ours_t / pool_t <= 1.5),
            ],
            [
                "at least 5x faster than (a)",
                f"{measures['(a) gather + Semaphore'].median / ours_m:.1f}x",
                str(measures["(a) gather + Semaphore"].median / ours_m >= 5),
            ],
            [
                "at least 5x faster than (c)",
                f"{measures['(c) aiometer.amap'].median / ours_m:.1f}x",
                str(measures["(c) aiometer.amap"].median / ours_m >= 5),
            ],
            ["stream at 1M within +20 MiB of 10k", f"{growth:+.1f} MiB", str(growth <= 20)],
        ],
    )
    body = (
        f"{n:,} jobs that `await asyncio.sleep(0)`, cap {CAP}, {args.repeats} repeats, "
        f"{machine()}.\n\n"
        f"{speed}\n\n{memory}\n\n{bars}\n"
    )
    publish("engine", body, args.write)


if __name__ == "__main__":
    main()
