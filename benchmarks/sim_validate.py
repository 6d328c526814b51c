"""The simulator against the local Lambda runtime, on the same scenario (issue 23).

    python benchmarks/sim_validate.py [--write] [--items 2000] [--repeats 3]

A function with reserved concurrency 8 whose task sleeps 50 ms; ``--items`` items at cap 64,
a fixed cap and ``adaptive=True``, with the default retries: first on the local runtime (real
awslambdaric processes, real HTTP through aioboto3), then in ``aiofanout.sim`` on a virtual
clock through the same ``LambdaTarget``. Bars: wall times within 15%, 429s of the same order.

The simulator needs two numbers from the machine, measured here before the comparison: the
round trip of a call that runs nothing (``DryRun`` invokes, one at a time: HTTP through
aioboto3 and the runtime's front), and the time each call holds an environment besides the
50 ms (awslambdaric posting the answer and asking for the next event, the runtime's
bookkeeping, this loaded 2-core machine's scheduling), from a run at a fixed cap of 8, which
never throttles: wall x 8 / items - 50 ms - the round trip. The local runtime models no invoke
request rate quota, so the simulator runs without it (``request_rate=False``).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from pathlib import Path
from typing import Any

from _bench import arguments, machine, publish, table

import aiofanout
from aiofanout import LambdaTarget, Status
from aiofanout.local import FunctionConfig, stack
from aiofanout.sim import SimulatedAws, Uniform, run_in_virtual_time

FUNCTION = "sleepy"
CODE = str(Path(__file__).with_name("functions"))
CAP, RESERVED, RUN = 64, 8, 0.05


async def local_run(aws: Any, items: int, cap: int, **options: Any) -> tuple[float, int, Any]:
    target = LambdaTarget(FUNCTION, task=None, endpoint_url=aws.lambda_endpoint_url)
    async with target.opened(concurrency=cap, timeout=30):
        before = aws.runtime.stats(FUNCTION)["throttles"]
        started = time.perf_counter()
        result = await aiofanout.dispatch_many(
            target, [{"i": i} for i in range(items)], concurrency=cap, timeout=30, **options
        )
        wall = time.perf_counter() - started
    return wall, aws.runtime.stats(FUNCTION)["throttles"] - before, result


async def on_local(items: int, repeats: int) -> list[tuple[float, float, dict[str, Any]]]:
    """``repeats`` rounds, each calibrating on its own (the machine's speed drifts under load)."""
    config = FunctionConfig(
        FUNCTION, "sleepy.handler", code_paths=[CODE], reserved_concurrency=RESERVED, timeout=10
    )
    rounds = []
    async with stack(functions=[config]) as aws:
        await local_run(aws, 4 * RESERVED, RESERVED)  # every environment warm
        for _ in range(repeats):
            trip = await round_trip(aws)
            oracle = await local_run(aws, items, RESERVED)
            runs = {
                "fixed": await local_run(aws, items, CAP),
                "adaptive": await local_run(aws, items, CAP, adaptive=True),
            }
            held = max(0.0, oracle[0] * RESERVED / items - RUN - trip)
            rounds.append((trip, held, {"oracle": oracle, **runs}))
    return rounds


async def round_trip(aws: Any, calls: int = 200) -> float:
    """The mean time of a DryRun invoke, one at a time: a call's round trip, nothing run."""
    target = LambdaTarget(
        FUNCTION, task=None, endpoint_url=aws.lambda_endpoint_url, invocation_type="DryRun"
    )
    async with target.opened(concurrency=1, timeout=30):
        started = time.perf_counter()
        await aiofanout.dispatch_many(target, range(calls), concurrency=1)
        return (time.perf_counter() - started) / calls


async def simulated_run(
    items: int, cap: int, trip: float, held: float, **options: Any
) -> tuple[float, int, Any]:
    # The round trip drawn around the measured mean: calls sent together arrive in any order.
    latency = Uniform(trip * 0.5, trip * 1.5)
    async with SimulatedAws(seed=23, latency=latency, request_rate=False) as aws:
        function = aws.function(
            FUNCTION, duration=RUN + held, reserved_concurrency=RESERVED, timeout=10
        )
        target = LambdaTarget(FUNCTION, task=None, client=aws.lambda_client())
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await aiofanout.dispatch_many(
            target, [{"i": i} for i in range(items)], concurrency=cap, timeout=30, **options
        )
        return loop.time() - started, sum(function.stats.throttles.values()), result


async def in_simulator(items: int, trip: float, held: float) -> dict[str, tuple[float, int, Any]]:
    random.seed(23)
    return {
        "oracle": await simulated_run(items, RESERVED, trip, held),
        "fixed": await simulated_run(items, CAP, trip, held),
        "adaptive": await simulated_run(items, CAP, trip, held, adaptive=True),
    }


def main() -> None:
    args = arguments(__doc__, items=2000)
    rounds = asyncio.run(on_local(args.items, args.repeats))
    names = {
        "oracle": f"fixed cap {RESERVED} (calibration)",
        "fixed": f"fixed cap {CAP}, default retries",
        "adaptive": f"adaptive, cap {CAP}",
    }
    rows: list[list[str]] = []
    differences: dict[str, list[float]] = {key: [] for key in names}
    throttles: dict[str, list[tuple[int, int]]] = {key: [] for key in names}
    for number, (trip, held, local) in enumerate(rounds, 1):
        simulated = run_in_virtual_time(in_simulator(args.items, trip, held))
        for key, name in names.items():
            (lw, lt, lr), (sw, st, sr) = local[key], simulated[key]
            differences[key].append(sw / lw - 1)
            throttles[key].append((lt, st))
            rows.append(
                [str(number), name, f"{trip * 1000:.1f} / {held * 1000:.1f}", f"{lw:.2f}",
                 f"{sw:.2f}", f"{sw / lw - 1:+.1%}", str(lt), str(st),
                 f"{lr.counts[Status.SUCCEEDED]} / {sr.counts[Status.SUCCEEDED]}"]
            )  # fmt: skip
    bars = []
    for key in ("fixed", "adaptive"):
        median = statistics.median(differences[key])
        lt = statistics.median(t for t, _ in throttles[key])
        st = statistics.median(s for _, s in throttles[key])
        same_order = (lt == st == 0) or (lt > 0 and st > 0 and 0.1 <= st / lt <= 10)
        bars.append(
            [f"{names[key]}: wall within 15% (median)", f"{median:+.1%}", str(abs(median) <= 0.15)]
        )
        bars.append(
            [
                f"{names[key]}: 429s of the same order (medians)",
                f"{lt:.0f} vs {st:.0f}",
                str(same_order),
            ]
        )
    body = (
        f"{args.items:,} items of {RUN * 1000:.0f} ms, reserved concurrency {RESERVED}, "
        f"{len(rounds)} rounds; each round runs the local runtime, then the simulator with what "
        "was measured in that round: the round trip of a call and each call's hold on an "
        f"environment besides the run (ms). {machine()}, shared.\n\n"
        + table(["round", "variant", "trip / hold ms", "local wall s", "simulated wall s",
                 "difference", "local 429s", "simulated 429s", "succeeded local / sim"], rows)
        + "\n\n" + table(["bar", "measured", "met"], bars)
    )  # fmt: skip
    publish("sim-validate", body, args.write)


if __name__ == "__main__":
    main()
