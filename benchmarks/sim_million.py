"""A million items through ``dispatch_many(LambdaTarget(...), adaptive=True)`` in the simulator.

    python benchmarks/sim_million.py [--write] [--items 1000000]

Bars (issue 23): under 60 s of wall time on this machine, and memory flat: the peak RSS within
50 MiB of a 10,000-item run. Each size runs in a fresh child process that reports its own wall
time, CPU time and peak RSS (VmHWM). The scenario: account concurrency 1,000, cap 1,000, a
function of 0.5 s runs and 250 ms cold starts, no round trip; the items are one shared dict, as
a generator (the result keeps one outcome per item: that is the engine's own memory).

Then the planner's closed form: ``plan --items 1000000 --duration 1 --concurrency 1000
--cold-start 0 --latency 0`` against N x d / C.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from _bench import arguments, machine, own_peak_rss_mb, publish, table

CHILD = "child"


def child(items: int) -> None:
    import asyncio
    import itertools

    from aiofanout import LambdaTarget, Status, dispatch_many
    from aiofanout.sim import SimulatedAws, run_in_virtual_time

    async def main() -> dict[str, float]:
        async with SimulatedAws(account_concurrency=1000, seed=1) as aws:
            function = aws.function("worker", duration=0.5, memory=1024)
            target = LambdaTarget("worker", task=None, client=aws.lambda_client())
            loop = asyncio.get_running_loop()
            result = await dispatch_many(
                target, itertools.repeat({"k": 1}, items), concurrency=1000, adaptive=True
            )
            return {
                "virtual_seconds": loop.time(),
                "succeeded": result.counts[Status.SUCCEEDED],
                "cold_starts": function.stats.cold_starts,
            }

    started, cpu = time.perf_counter(), time.process_time()
    answer = run_in_virtual_time(main())
    answer["wall"] = time.perf_counter() - started
    answer["cpu"] = time.process_time() - cpu
    answer["rss"] = own_peak_rss_mb()
    print(json.dumps(answer))


def measure(items: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, CHILD, str(items)], check=True, capture_output=True, text=True
    ).stdout
    answer: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return answer


def closed_form() -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-m", "aiofanout", "plan", "--items", "1000000", "--duration", "1",
         "--concurrency", "1000", "--cold-start", "0", "--latency", "0", "--json",
         "--no-progress"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    plan = json.loads(out)
    return plan["wall_seconds"], 1_000_000 * 1.0 / 1000


def main() -> None:
    args = arguments(__doc__, items=1_000_000)
    small, large = measure(10_000), measure(args.items)
    rows = [
        [f"{n:,}", f"{r['virtual_seconds']:,.1f}", f"{r['succeeded']:,.0f}", f"{r['wall']:.1f}",
         f"{r['cpu']:.1f}", f"{r['cpu'] / n * 1e6:.1f}", f"{r['rss']:.1f}"]
        for n, r in ((10_000, small), (args.items, large))
    ]  # fmt: skip
    predicted, exact = closed_form()
    growth = large["rss"] - small["rss"]
    bars = [
        [f"{args.items:,} items under 60 s of wall time", f"{large['wall']:.1f} s", str(large["wall"] < 60)],
        ["memory flat: within 50 MiB of 10,000 items", f"+{growth:.1f} MiB", str(growth <= 50)],
        ["plan's closed form within 2% of N x d / C", f"{predicted:,.2f} s vs {exact:,.0f} s ({predicted / exact - 1:+.3%})",
         str(abs(predicted / exact - 1) <= 0.02)],
    ]  # fmt: skip
    body = (
        f"{machine()}; the machine is shared (the wall time includes waiting for a core; the CPU "
        "time does not).\n\n"
        + table(["items", "virtual s", "succeeded", "wall s", "CPU s", "CPU us/item", "peak RSS MiB"], rows)
        + "\n\n" + table(["bar", "measured", "met"], bars)
    )  # fmt: skip
    publish("sim-million", body, args.write)


if __name__ == "__main__":
    if sys.argv[1:2] == [CHILD]:
        child(int(sys.argv[2]))
    else:
        main()
