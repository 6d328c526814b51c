"""Injected crashes and hangs at their point (before, during, after the handler), end to end.

Real awslambdaric processes run ``marked.work``, which appends ``start <id>`` when it starts and
``finish <id>`` when it ends, so each test sees how far the handler got before the fault struck.
A crash's invoke fails only once its process has exited, and a hang's only once the timeout has
killed it, so a mark missing then can never appear later.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from aiofanout import LambdaTarget, Retry, TaskFailed, UsageError, dispatch_many
from aiofanout.local import Faults, FunctionConfig, LocalAws
from aiofanout.testing import eventually

# End to end on a local stack of real processes: every test here is slow.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

FUNCTIONS = str(Path(__file__).with_name("lambda_functions"))


class Marked:
    """A fresh ``marked.work`` function and the marks its invocations leave."""

    def __init__(self, aws: LocalAws, tmp_path: Path, faults: Faults, **config: Any) -> None:
        self.aws = aws
        self.name = f"fn-{uuid.uuid4().hex[:8]}"
        self.marks = tmp_path / f"{self.name}.marks"
        environment = {"MARKS_FILE": str(self.marks)}
        aws.add_function(
            FunctionConfig(
                self.name,
                "marked.work",
                code_paths=[FUNCTIONS],
                environment=environment,
                faults=faults,
                **config,
            )
        )

    def target(self, **kwargs: Any) -> LambdaTarget:
        return LambdaTarget(
            self.name,
            task=None,
            endpoint_url=self.aws.lambda_endpoint_url,
            region_name="us-east-1",
            **kwargs,
        )

    async def invoke_one(self, seconds: float = 0.0) -> str:
        """Run one invocation; return its function error type ("" if it succeeded)."""
        result = await dispatch_many(self.target(), [{"id": 0, "seconds": seconds}], concurrency=1)
        error = result[0].error
        if error is None:
            return ""
        assert isinstance(error, TaskFailed), error
        return str(error.remote_type)

    def lines(self) -> list[str]:
        return self.marks.read_text().splitlines() if self.marks.exists() else []

    def count(self, what: str) -> Counter[int]:
        return Counter(int(line.split()[1]) for line in self.lines() if line.startswith(what))


# -- each point, alone ------------------------------------------------------------------------


async def test_a_crash_before_the_handler_fails_the_invoke_and_nothing_ran(
    aws: LocalAws, tmp_path: Path
) -> None:
    fn = Marked(aws, tmp_path, Faults(crash=1.0, crash_at="before"))
    assert await fn.invoke_one() == "Runtime.ExitError"
    assert fn.lines() == []  # the handler never got the invocation
    assert aws.runtime.stats(fn.name)["environments"] == 0  # the environment died


async def test_a_crash_during_the_handler_stops_it_between_its_start_and_its_end(
    aws: LocalAws, tmp_path: Path
) -> None:
    fn = Marked(aws, tmp_path, Faults(crash=1.0, crash_at="during"), timeout=2.0)
    # The handler would outlive its timeout: only the crash can end it with ExitError.
    assert await fn.invoke_one(seconds=30) == "Runtime.ExitError"
    assert fn.lines() == ["start 0"]


async def test_a_crash_after_the_handler_fails_the_invoke_although_the_work_ran(
    aws: LocalAws, tmp_path: Path
) -> None:
    fn = Marked(aws, tmp_path, Faults(crash=1.0))  # "after" is the default point
    assert await fn.invoke_one() == "Runtime.ExitError"
    assert fn.lines() == ["start 0", "finish 0"]


async def test_a_hang_before_the_handler_times_out_and_nothing_ran(
    aws: LocalAws, tmp_path: Path
) -> None:
    fn = Marked(aws, tmp_path, Faults(hang=1.0, hang_at="before"), timeout=0.5)
    assert await fn.invoke_one() == "Sandbox.Timedout"
    assert fn.lines() == []


async def test_a_hang_during_the_handler_freezes_it_until_the_timeout(
    aws: LocalAws, tmp_path: Path
) -> None:
    timeout = 2.0
    faults = Faults(hang=1.0, hang_at="during", seed=3)
    strike = faults.draw(faults.dice()).strike * timeout  # the first invocation's draw
    # Long enough to be struck, short enough to finish within the timeout if it were not.
    seconds = (strike + timeout) / 2
    spared = Marked(aws, tmp_path, Faults(), timeout=timeout)
    assert await spared.invoke_one(seconds) == ""
    fn = Marked(aws, tmp_path, faults, timeout=timeout)
    assert await fn.invoke_one(seconds) == "Sandbox.Timedout"
    assert fn.lines() == ["start 0"]


async def test_a_hang_after_the_handler_times_out_although_the_work_ran(
    aws: LocalAws, tmp_path: Path
) -> None:
    fn = Marked(aws, tmp_path, Faults(hang=1.0), timeout=0.5)
    assert await fn.invoke_one() == "Sandbox.Timedout"
    assert fn.lines() == ["start 0", "finish 0"]


# -- nothing is lost ----------------------------------------------------------------------------


async def test_events_crashing_mid_handler_each_finish_once_or_reach_the_on_failure_queue(
    aws: LocalAws, tmp_path: Path
) -> None:
    timeout, sent = 3.0, 16
    failures = await aws.create_queue(f"failures-{uuid.uuid4().hex[:8]}")
    fn = Marked(
        aws,
        tmp_path,
        Faults(crash=0.6, crash_at="during", seed=11),
        timeout=timeout,
        event_retries=2,
        event_retry_delays=(0.05, 0.05),
        on_failure=failures,
    )
    # Each try ends at 95% of its timeout (counted from the delivery, as the strike is), after
    # the latest strike (90%): a strike always lands mid-way, and a finish mark means that try
    # succeeded and its event is done.
    items = [{"id": n, "leave": 0.05 * timeout} for n in range(sent)]
    dead: set[int] = set()
    async with aws.client("sqs") as sqs:
        await warm_up_on_failure(aws, tmp_path, sqs, failures)
        events = fn.target(invocation_type="Event")
        assert (await dispatch_many(events, items, concurrency=sent)).ok

        async def every_event_finished_or_failed() -> bool:
            if set(fn.count("finish")) | dead == set(range(sent)):
                return True
            dead.update(await receive_ids(sqs, failures))
            return False

        await eventually(every_event_finished_or_failed, timeout=60, interval=0)
    finished = fn.count("finish")
    starts = fn.count("start")
    assert len(finished) + len(dead) == sent  # none lost, none counted twice
    assert all(n == 1 for n in finished.values())  # a finished event ran to its end once
    assert all(starts[n] == 3 and n not in finished for n in dead)  # every try crashed mid-way
    assert dead  # some events crashed on every try...
    assert sum(starts[n] for n in finished) > len(finished)  # ...and some finished on a retry


async def warm_up_on_failure(aws: LocalAws, tmp_path: Path, sqs: Any, failures: str) -> None:
    """Send one failing event to ``failures`` first, so the runtime has its SQS client.

    Creating a client loads botocore's models and blocks the event loop for a moment: during
    the test proper, that would delay strikes and answers of the tries in flight.
    """
    fn = Marked(aws, tmp_path, Faults(error=1.0), on_failure=failures, event_retries=0)
    events = fn.target(invocation_type="Event")
    assert (await dispatch_many(events, [{"id": -1}], concurrency=1)).ok

    async def the_warm_up_event_reached_the_queue() -> bool:
        return await receive_ids(sqs, failures) == {-1}

    await eventually(the_warm_up_event_reached_the_queue, timeout=30, interval=0)


async def receive_ids(sqs: Any, url: str) -> set[int]:
    got = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    messages = got.get("Messages", [])
    for message in messages:
        await sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    records = [json.loads(m["Body"]) for m in messages]
    assert all(r["requestContext"]["condition"] == "RetriesExhausted" for r in records)
    return {int(r["requestPayload"]["id"]) for r in records}


async def test_retrying_crashes_before_the_handler_runs_every_item_exactly_once(
    aws: LocalAws, tmp_path: Path
) -> None:
    fn = Marked(aws, tmp_path, Faults(crash=0.3, crash_at="before", seed=5))
    items = [{"id": n} for n in range(12)]
    # A crash before the handler is safe to retry: nothing ran.
    retry = Retry(attempts=10, base=0.01, retry_on=(TaskFailed,))
    result = await dispatch_many(fn.target(), items, concurrency=12, retry=retry)
    assert result.values() == list(range(12))
    assert fn.count("start") == fn.count("finish") == Counter(range(12))  # each exactly once
    assert aws.runtime.stats(fn.name)["invocations"] > 12  # some tries crashed


async def test_retrying_crashes_after_the_handler_runs_some_items_twice(
    aws: LocalAws, tmp_path: Path
) -> None:
    # The contrast: the same retries over crashes after the work duplicate it.
    fn = Marked(aws, tmp_path, Faults(crash=0.3, seed=5))
    items = [{"id": n} for n in range(12)]
    retry = Retry(attempts=10, base=0.01, retry_on=(TaskFailed,))
    result = await dispatch_many(fn.target(), items, concurrency=12, retry=retry)
    assert result.values() == list(range(12))
    assert set(fn.count("finish")) == set(range(12))
    assert max(fn.count("finish").values()) > 1


# -- the dice -----------------------------------------------------------------------------------


async def test_a_fault_during_the_handler_strikes_between_10_and_90_percent_of_the_timeout() -> (
    None
):
    faults = Faults(crash=0.5, crash_at="during", seed=7)
    dice = faults.dice()
    draws = [faults.draw(dice) for _ in range(2_000)]
    strikes = [d.strike for d in draws]
    assert 0.1 <= min(strikes) < 0.15
    assert 0.85 < max(strikes) < 0.9
    reference = faults.dice()  # two rolls per draw, whether it crashed or not
    expected = [(reference.random() < 0.5, reference.uniform(0.1, 0.9)) for _ in range(2_000)]
    assert [(d.crash, d.strike) for d in draws] == expected
    assert {d.failure() for d in draws if d.crash} == {("crash", "during")}
    assert {d.failure() for d in draws if not d.crash} == {None}


async def test_the_earliest_fault_wins_and_at_the_same_point_the_hang() -> None:
    def first(**kwargs: Any) -> Any:
        faults = Faults(crash=1.0, hang=1.0, **kwargs)
        return faults.draw(faults.dice()).failure()

    assert first() == ("hang", "after")
    assert first(crash_at="before") == ("crash", "before")
    assert first(hang_at="during") == ("hang", "during")
    assert first(crash_at="during", hang_at="during") == ("hang", "during")


async def test_a_point_that_does_not_exist_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="crash_at"):
        Faults(crash=0.1, crash_at="midway")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="hang_at"):
        Faults(hang_at="")  # type: ignore[arg-type]


async def test_seeded_configs_without_a_point_draw_as_before() -> None:
    # The point adds no roll unless a fault strikes "during": existing seeds keep their draws.
    old = Faults(throttle=0.1, crash=0.2, hang=0.3, seed=9)
    moved = Faults(throttle=0.1, crash=0.2, hang=0.3, seed=9, crash_at="before", hang_at="after")
    dice, reference = old.dice(), moved.dice()
    pairs = [(old.draw(dice), moved.draw(reference)) for _ in range(500)]
    assert all((a.throttle, a.crash, a.hang) == (b.throttle, b.crash, b.hang) for a, b in pairs)
