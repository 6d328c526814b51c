"""The README's demo: fan a batch out four ways and show live progress and a summary.

1. in-process coroutines (simulated I/O, throttles and hangs, retried), then a journaled run
   cut short by its deadline and resumed: what succeeded is not run again;
2. Lambda ``RequestResponse`` through the local runtime, with injected throttles so retries show;
3. Lambda ``Event`` (fire and forget), waiting until every event has run;
4. SQS, consumed by an event source mapping, waiting until the queue is empty.

Phases 2-4 run the example worker (``examples/worker.py``) in real awslambdaric processes
behind the local runtime, with SQS on a moto server: all on 127.0.0.1, no AWS account.
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ._engine import dispatch_many, resume
from ._errors import Throttled, UsageError
from ._journal import FileJournal
from ._outcome import Status
from ._report import PhaseSummary, Reporter
from ._retry import Retry

WORKER_HANDLER = "worker.lambda_handler"


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


async def run_resumed(reporter: Reporter, items: int) -> None:
    """Phase 1b: a journaled run stopped by its deadline, then resumed from its journal."""
    runs: Counter[int] = Counter()

    async def steady(item: int) -> int:
        await asyncio.sleep(0.02)
        runs[item] += 1  # counted when it completes: a run the deadline cut does not count
        return item * item

    with tempfile.TemporaryDirectory() as directory:
        journal = FileJournal(directory)
        # About half the items fit in the deadline; the rest never start.
        first = await dispatch_many(
            steady, range(items), concurrency=5, deadline=0.002 * items, journal=journal
        )
        assert first.run_id is not None
        with reporter.phase("journaled run, resumed", items) as progress:
            result = await resume(
                first.run_id,
                steady,
                range(items),
                concurrency=5,
                journal=journal,
                on_progress=progress,
            )
    journaled = first.counts[Status.SUCCEEDED]
    twice = sum(1 for n in runs.values() if n > 1)
    note = f"{journaled} from the journal, {items - journaled} run on resume, {twice} twice"
    reporter.add(PhaseSummary.of("journal + resume", result, note))


def find_examples() -> Path:
    """The ``examples/`` folder holding the worker (next to ``src/``, or in the current dir)."""
    for candidate in (Path(__file__).resolve().parents[2] / "examples", Path.cwd() / "examples"):
        if (candidate / "worker.py").exists():
            return candidate
    raise UsageError(
        "the demo runs examples/worker.py: run it from a checkout of aiofanout "
        "(pip install -e '.[local]' && python -m aiofanout demo)"
    )


async def run_aws_phases(reporter: Reporter, items: int) -> None:
    """Phases 2-4, on the embedded stack."""
    from .local import stack

    examples = str(find_examples())
    reporter.say("starting the embedded stack (moto server + local Lambda runtime) on 127.0.0.1")
    async with stack() as aws:
        reporter.say(f"  moto: {aws.endpoint_url}   lambda: {aws.lambda_endpoint_url}")
        await run_request_response_phase(reporter, aws, examples, items)
        await run_event_phase(reporter, aws, examples, items)
        await run_sqs_phase(reporter, aws, examples, items)


async def run_request_response_phase(
    reporter: Reporter, aws: Any, examples: str, items: int
) -> None:
    """Phase 2: ``RequestResponse`` invokes against a function that throttles 10% of calls."""
    from .local import Faults, FunctionConfig
    from .targets import LambdaTarget

    worker = "demo-worker"
    aws.add_function(
        FunctionConfig(
            worker,
            WORKER_HANDLER,
            code_paths=[examples],
            timeout=10,
            reserved_concurrency=8,
            faults=Faults(throttle=0.1, seed=7),
        )
    )
    target = LambdaTarget(
        worker, task="thumbnail", endpoint_url=aws.lambda_endpoint_url, region_name=aws.region
    )
    with reporter.phase("Lambda RequestResponse", items) as progress:
        result = await dispatch_many(
            target,
            (f"photos/{i:05d}.jpg" for i in range(items)),
            concurrency=16,
            timeout=15,
            retry=Retry(attempts=8, base=0.05, cap=1.0),
            on_progress=progress,
        )
    stats = aws.runtime.stats(worker)
    reporter.add(
        PhaseSummary.of(
            "Lambda RequestResponse",
            result,
            f"{stats['throttles']} throttles; {len(stats['cold_starts_ms'])} cold starts, "
            f"median {_median(stats['cold_starts_ms']):.0f} ms",
        )
    )


async def run_event_phase(reporter: Reporter, aws: Any, examples: str, items: int) -> None:
    """Phase 3: ``Event`` invokes whose results come back through a reply queue."""
    from .local import FunctionConfig
    from .targets import LambdaTarget

    name = "demo-events"
    aws.add_function(
        FunctionConfig(
            name, WORKER_HANDLER, code_paths=[examples], timeout=10, reserved_concurrency=8
        )
    )
    target = LambdaTarget(
        name,
        task="checksum",
        invocation_type="Event",
        replies=True,  # a reply queue for this fan-out, deleted afterwards
        endpoint_url=aws.lambda_endpoint_url,
        sqs_endpoint_url=aws.endpoint_url,
        region_name=aws.region,
    )
    with reporter.phase("Lambda Event, replies gathered", items) as progress:
        result = await dispatch_many(
            target,
            (f"doc-{i}" for i in range(items)),
            concurrency=32,
            timeout=30,
            on_progress=progress,
        )
    note = f"{len(result.values())} results back; latency = the round trip"
    reporter.add(PhaseSummary.of("Lambda Event + replies", result, note))


async def run_sqs_phase(reporter: Reporter, aws: Any, examples: str, items: int) -> None:
    """Phase 4: SQS to an event source mapping, each result back through a reply queue."""
    from .local import EventSourceMapping, FunctionConfig
    from .targets import SqsTarget

    name = "demo-consumer"
    aws.add_function(
        FunctionConfig(
            name, WORKER_HANDLER, code_paths=[examples], timeout=10, reserved_concurrency=4
        )
    )
    queue = await aws.create_queue("demo-work", VisibilityTimeout="60")
    await aws.add_event_source(EventSourceMapping(queue, name, batch_size=10, pollers=2))
    target = SqsTarget(
        queue,
        task="thumbnail",
        replies=True,
        endpoint_url=aws.endpoint_url,
        region_name=aws.region,
    )
    with reporter.phase("SQS via the mapping, replies gathered", items) as progress:
        result = await dispatch_many(
            target,
            (f"queued/{i:05d}.jpg" for i in range(items)),
            concurrency=50,  # items awaiting their reply: the work queue stays shallow
            timeout=60,
            on_progress=progress,
        )
    note = f"{len(result.values())} results back; latency = the round trip"
    reporter.add(PhaseSummary.of("SQS + replies", result, note))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0.0


async def run_demo(items: int, *, local: bool = True) -> int:
    """Run every phase; return the exit code."""
    reporter = Reporter()
    reporter.say(f"[bold]aiofanout demo[/bold]: {items} items per phase")
    started = time.monotonic()
    await run_in_process(reporter, items)
    await run_resumed(reporter, items)
    if local:
        if any(importlib.util.find_spec(name) is None for name in ("aioboto3", "awslambdaric")):
            reporter.say("[yellow]skipping the AWS phases: pip install 'aiofanout[local]'[/yellow]")
        else:
            await run_aws_phases(reporter, items)
    reporter.table()
    reporter.say(f"done in {time.monotonic() - started:.1f} s")
    return 1 if reporter.failed else 0
