"""The deadline reaches the worker: carried in the envelope, refused once passed, inherited.

Where the sender waits for the answer, each attempt carries the earlier of its timeout and the
fan-out's deadline (``deadline_ms``, epoch ms); the worker refuses an envelope whose deadline has
passed (``Expired``: it never runs), runs the task under the time that remains, and a dispatch
from inside the task inherits the tighter deadline.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from aiofanout import Call, LambdaTarget, Retry, SqsTarget, Status, TaskTimedOut, dispatch_many
from aiofanout.errors import BadSignature, Expired
from aiofanout.local import EventSourceMapping, FunctionConfig, LocalAws, stack
from aiofanout.testing import eventually
from aiofanout.wire import decode_task, encode_task
from aiofanout.worker import App

# End to end through real processes: every test here is slow.
pytestmark = pytest.mark.slow


def now_ms() -> int:
    return int(time.time() * 1000)


def test_a_deadline_is_stamped_keeping_an_earlier_one_and_the_signature() -> None:
    from aiofanout._wire import Outgoing, TaskSpec, prepare_envelope

    plain = prepare_envelope(TaskSpec("t"), 1)
    assert decode_task(plain.finish(5_000)).deadline_ms == 5_000
    assert decode_task(plain.finish()).deadline_ms is None
    earlier = prepare_envelope(TaskSpec("t"), 1, deadline_ms=4_000)
    assert decode_task(earlier.finish(5_000)).deadline_ms == 4_000  # the earlier one stays
    later = prepare_envelope(TaskSpec("t", "k"), 1, deadline_ms=9_000)
    stamped = later.finish(5_000)
    assert decode_task(stamped, secret="k").deadline_ms == 5_000  # signed over the new one
    with pytest.raises(BadSignature):
        decode_task(stamped.replace(b"5000", b"9999"), secret="k")
    raw = b'{"not": "an envelope"}'
    assert Outgoing(raw).body(5_000) == raw


async def test_an_expired_envelope_never_runs() -> None:
    app = App("deadline")
    ran: list[int] = []

    @app.task
    async def record(x: int) -> int:
        ran.append(x)
        return x

    result = await app.run_envelope(encode_task("record", [1], {}, deadline_ms=now_ms() - 1))
    assert isinstance(result.error, Expired)
    assert result.reply.error is not None
    assert result.reply.error.type == "Expired"
    assert ran == []
    fresh = await app.run_envelope(encode_task("record", [2], {}, deadline_ms=now_ms() + 60_000))
    assert fresh.error is None
    assert ran == [2]


async def test_the_task_runs_under_the_time_left_and_hands_the_tighter_deadline_on() -> None:
    app = App("deadline")
    handed: list[dict[str, Any]] = []
    steps: list[str] = []

    @app.task(timeout=0.2)  # tighter than the sender's deadline below
    async def fan(x: int) -> None:
        handed.append(json.loads(child.envelope(x)))
        steps.append("started")
        await asyncio.sleep(30)
        steps.append("finished")  # a side effect after the deadline: must never happen

    @app.task(timeout=120)
    async def child(x: int) -> int:
        return x

    deadline = now_ms() + 5_000
    sent = now_ms()
    started = time.monotonic()
    result = await app.run_envelope(encode_task("fan", [1], {}, deadline_ms=deadline))
    assert isinstance(result.error, TimeoutError)
    assert time.monotonic() - started < 2  # stopped at its 0.2 s timeout, not after 30 s
    assert steps == ["started"]
    [envelope] = handed
    assert envelope["depth"] == 1
    # The tighter of the task's own timeout and the sender's deadline is handed on.
    assert sent + 150 <= envelope["deadline_ms"] <= now_ms()


# -- end to end, through the local stack ---------------------------------------------------------

FUNCTIONS = str(Path(__file__).with_name("lambda_functions"))
WORKER = "deadline_worker.lambda_handler"


@pytest_asyncio.fixture(loop_scope="function")
async def aws() -> AsyncIterator[LocalAws]:
    async with stack() as local:
        # One environment: a second invoke runs only once the first has really ended.
        config = FunctionConfig(
            "deadline", WORKER, timeout=30, code_paths=[FUNCTIONS], reserved_concurrency=1
        )
        local.add_function(config)
        yield local


async def test_a_request_response_task_is_stopped_at_its_attempt_timeout(
    aws: LocalAws, tmp_path: Path
) -> None:
    target = LambdaTarget("deadline", task="slow_touch", endpoint_url=aws.lambda_endpoint_url)
    slow = await dispatch_many(
        target, [Call(str(tmp_path), "slow", 5.0)], concurrency=1, timeout=1.0, retry=1
    )
    # Whichever ends the attempt first at its 1 s bound, the engine or the worker (which got the
    # same bound in the envelope and stopped the task there), the item ends on its deadline.
    # Either way it ends TIMED_OUT: the worker's answer comes back as TaskTimedOut.
    outcome = slow[0]
    assert outcome.status is Status.TIMED_OUT
    if isinstance(outcome.error, TaskTimedOut):
        assert "deadline" in outcome.error.message
    assert outcome.elapsed < 3
    # The next invoke gets the one environment only once the slow task has ended there: at its
    # 1 s deadline if the worker got it, after its 5 s of work if not (then it would have
    # finished and left its mark).
    quick = await dispatch_many(
        target,
        [Call(str(tmp_path), "quick", 0.0)],
        concurrency=1,
        timeout=20,
        retry=Retry(attempts=60, base=0.05, cap=0.2),  # throttled while the environment is busy
    )
    assert quick.ok, quick.failures()
    assert (tmp_path / "slow.started").exists()
    assert not (tmp_path / "slow.finished").exists()


async def _queue_drained(aws: LocalAws, url: str) -> None:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    async with aws.client("sqs") as sqs:

        async def drained() -> bool:
            got = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)
            return not any(int(value) for value in got["Attributes"].values())

        await eventually(drained, timeout=30, interval=0.1)


async def test_sqs_messages_received_after_the_senders_deadline(
    aws: LocalAws, tmp_path: Path
) -> None:
    queue = await aws.create_queue(f"late-{uuid.uuid4().hex[:8]}")

    def target(**options: Any) -> SqsTarget:
        return SqsTarget(
            queue,
            task="slow_touch",
            endpoint_url=aws.endpoint_url,
            region_name=aws.region,
            **options,
        )

    folder = str(tmp_path)
    # Nobody consumes the queue yet: the round trip times out at the fan-out's deadline (3 s:
    # making the reply queue counts against it, and on a loaded machine took over 1 s).
    waited = await dispatch_many(
        target(replies=True), [Call(folder, "awaited", 0.0)], concurrency=1, deadline=3.0
    )
    assert waited[0].status is Status.TIMED_OUT
    # Its client made first: on a loaded machine making it took longer than the deadline.
    async with target().opened(concurrency=1) as forgetting:
        sent = await dispatch_many(
            forgetting, [Call(folder, "forgotten", 0.0)], concurrency=1, deadline=1.0
        )
    assert sent.ok  # fire-and-forget: the deadline bounds only the sending
    expiring = await dispatch_many(
        target(expires=0.5), [Call(folder, "expiring", 0.0)], concurrency=1
    )
    assert expiring.ok
    await asyncio.sleep(1.0)  # let the sender's deadline and the expiry pass before delivery
    await aws.add_event_source(EventSourceMapping(queue, "deadline", batch_size=10))
    await _queue_drained(aws, queue)
    assert (tmp_path / "forgotten.finished").exists()  # fire-and-forget work still runs
    assert not (tmp_path / "awaited.started").exists()  # its sender gave up: never ran
    assert not (tmp_path / "expiring.started").exists()  # expired: never ran, not retried
