"""Fan-in: replies gathered through SQS reply queues, end to end on the local stack.

The router is tested alone first (routing by id, duplicates, late replies, strays, Lambda's
invocation records); then real processes: SqsTarget -> event source mapping -> awslambdaric ->
App -> reply queue -> the target, and LambdaTarget ``Event`` with the on-failure destination.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from aiofanout import (
    LambdaTarget,
    PayloadTooLarge,
    SqsTarget,
    Status,
    TaskFailed,
    UsageError,
    dispatch_many,
)
from aiofanout.local import EventSourceMapping, Faults, FunctionConfig, LocalAws, stack
from aiofanout.targets._reply_router import (
    Answer,
    Received,
    ReplyRouter,
    parse,
    raise_or_return,
    reply_id,
)
from aiofanout.testing import LambdaContext, eventually, sqs_event
from aiofanout.wire import ErrorInfo, ReplyEnvelope, encode_reply
from aiofanout.worker import App

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.usefixtures("aws_client_path")]

FUNCTIONS = str(Path(__file__).with_name("lambda_functions"))
WORKER = "fanin_worker.lambda_handler"


def refused(n: int) -> bool:  # as in lambda_functions/fanin_worker.py
    return n % 33 == 32


def delivered_twice(n: int) -> bool:
    return n % 10 == 5


def crashes(n: int) -> bool:
    return n % 10 == 7


def reply(envelope_id: str, value: Any = None, error: str | None = None) -> str:
    info = ErrorInfo(type=error, message="boom") if error else None
    body = ReplyEnvelope(id=envelope_id, ok=error is None, value=value, error=info)
    return encode_reply(body).decode()


# -- the router alone ----------------------------------------------------------------------------


def answered(future: asyncio.Future[Received]) -> Answer:
    """What the item waiting on ``future`` makes of what it received (unsigned)."""
    got = future.result()
    return parse(got) if isinstance(got, str) else got


async def test_the_router_routes_by_id_and_counts_duplicates() -> None:
    router = ReplyRouter(grace=60)
    first, second = router.expect("a"), router.expect("b")
    assert router.route(reply("b", 2), age=0) is True
    assert router.route(reply("a", error="ValueError"), age=0) is True
    assert answered(second) == (2, None)
    _, error = answered(first)
    assert isinstance(error, TaskFailed)
    assert error.remote_type == "ValueError"
    assert router.route(reply("b", 99), age=0) is True  # deleted, never a second outcome
    assert answered(second) == (2, None)
    router.forget("a")
    router.forget("b")
    assert router.route(reply("a", 5), age=0) is True  # after the item ended: still a duplicate
    assert (router.stats.received, router.stats.duplicates) == (2, 2)


async def test_a_late_reply_completes_a_retry_of_the_same_item() -> None:
    router = ReplyRouter(grace=60)
    router.expect("a")
    router.forget("a")  # the attempt timed out without a reply
    assert router.route(reply("a", 7), age=0) is True
    assert router.stats.late == 1
    retry = router.expect("a")  # the retry of the item, same envelope id
    assert retry.done()
    assert answered(retry) == (7, None)


async def test_strays_are_left_for_others_then_dropped_after_the_grace_period() -> None:
    router = ReplyRouter(grace=30)
    waiting = router.expect("mine")
    assert router.route(reply("someone-elses", 1), age=5) is False  # left on the queue
    assert router.route("not json at all", age=5) is False
    assert router.stats.left == 2
    assert router.route(reply("someone-elses", 1), age=31) is True  # past the grace period
    assert router.stats.strays == 1
    assert not waiting.done()  # nothing of a live item was touched


async def test_an_invocation_record_is_matched_by_the_envelope_inside() -> None:
    record = {
        "version": "1.0",
        "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 1},
        "requestPayload": {"v": 1, "id": "abc", "task": "work", "args": [1]},
        "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
        "responsePayload": {"errorType": "Runtime.ExitError", "errorMessage": "exited"},
    }
    _, error = parse(json.dumps(record))
    assert reply_id(json.dumps(record)) == "abc"
    assert isinstance(error, TaskFailed)
    assert error.remote_type == "Runtime.ExitError"
    assert "RetriesExhausted" in error.message


async def test_replies_need_an_envelope_and_an_event_invoke() -> None:
    with pytest.raises(UsageError, match="task envelopes"):
        SqsTarget("https://q", task=None, replies=True)
    with pytest.raises(UsageError, match="Event"):
        LambdaTarget("f", task="work", replies=True)
    with pytest.raises(UsageError, match="True or an SQS queue URL"):
        SqsTarget("https://q", task="work", replies="")


# -- the worker's side -------------------------------------------------------------------------


class RecordingSqs:
    """A stand-in SQS client that records SendMessageBatch calls and refuses one entry."""

    def __init__(self, refuse: str = "") -> None:
        self.batches: list[tuple[str, list[str]]] = []
        self.refuse = refuse

    async def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> Any:  # noqa: N803
        self.batches.append((QueueUrl, [e["MessageBody"] for e in Entries]))
        failed = [
            {"Id": e["Id"], "Code": "X", "SenderFault": True}
            for e in Entries
            if self.refuse and self.refuse in e["MessageBody"]
        ]
        return {"Failed": failed}


async def test_the_worker_sends_a_batchs_replies_in_batches_per_queue() -> None:
    worker = App("batched-replies")

    @worker.task
    async def echo(x: Any) -> Any:
        return x

    sqs = RecordingSqs(refuse='"value":"refused"')
    worker.runner.reply_client = sqs
    bodies = [echo.envelope(n, reply_to="https://q/a") for n in range(23)]
    bodies += [
        echo.envelope("b", reply_to="https://q/b"),
        echo.envelope("refused", reply_to="https://q/b"),
    ]
    event = sqs_event(bodies)
    answer = await worker.handle(event, LambdaContext())
    assert [(url, len(replies)) for url, replies in sqs.batches] == [
        ("https://q/a", 10),
        ("https://q/a", 10),
        ("https://q/a", 3),
        ("https://q/b", 2),
    ]
    # The refused reply's record comes back, so its reply is sent again.
    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][-1]["messageId"]}]}


async def test_a_reply_over_the_sqs_limit_becomes_an_error_naming_the_limit() -> None:
    worker = App("big-replies")

    @worker.task
    async def big(n: int) -> str:
        return "x" * n

    sqs = RecordingSqs()
    worker.runner.reply_client = sqs
    await worker.handle(sqs_event([big.envelope(2 * 1024 * 1024, reply_to="https://q/a")]), None)
    [(_, [body])] = sqs.batches
    with pytest.raises(PayloadTooLarge, match="1,048,576-byte SQS message limit"):
        raise_or_return(parse(body))


# -- end to end ------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def aws() -> AsyncIterator[LocalAws]:
    async with stack() as local:
        local.add_function(FunctionConfig("fanin", WORKER, timeout=30, code_paths=[FUNCTIONS]))
        yield local


async def work_queue(aws: LocalAws, *, batch_size: int = 10, pollers: int = 2) -> str:
    # Refused records stay on the queue (batchItemFailures): not back within a test.
    url = await aws.create_queue(f"work-{uuid.uuid4().hex[:8]}", VisibilityTimeout="60")
    await aws.add_event_source(
        EventSourceMapping(url, "fanin", batch_size=batch_size, pollers=pollers)
    )
    return url


def sqs_target(aws: LocalAws, queue_url: str, replies: bool | str = True) -> SqsTarget:
    return SqsTarget(
        queue_url,
        task="work",
        replies=replies,
        endpoint_url=aws.endpoint_url,
        region_name="us-east-1",
    )


async def exists(aws: LocalAws, queue_url: str) -> bool:
    async with aws.client("sqs") as sqs:
        urls = (await sqs.list_queues()).get("QueueUrls", [])
    return queue_url in urls


async def sample_while(
    running: asyncio.Task[Any], probe: Callable[[], Awaitable[int]]
) -> list[int]:
    samples = []
    while not running.done():
        samples.append(await probe())
    return samples


@pytest.mark.slow
async def test_sqs_round_trip_values_in_order_errors_at_once_duplicates_once(
    aws: LocalAws,
) -> None:
    pollers, batch_size = 2, 10
    queue_url = await work_queue(aws, batch_size=batch_size, pollers=pollers)
    target = sqs_target(aws, queue_url)
    assert target.fanin is not None
    fanin = target.fanin
    items, cap, timeout = list(range(250)), 20, 30.0
    waiting: list[int] = []

    async def depth() -> int:
        async with aws.client("sqs") as sqs:
            attributes = await sqs.get_queue_attributes(
                QueueUrl=queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )
        waiting.append(fanin.waiting)
        return sum(int(v) for v in attributes["Attributes"].values())

    running = asyncio.create_task(dispatch_many(target, items, concurrency=cap, timeout=timeout))
    samples = await sample_while(running, depth)
    result = await running

    assert result.values() == [{"n": n, "square": n * n} for n in items if not refused(n)]
    failures = result.failures()
    assert [f.index for f in failures] == [n for n in items if refused(n)]
    for failure in failures:
        assert failure.status is Status.FAILED
        assert isinstance(failure.error, TaskFailed)
        assert failure.error.remote_type == "ValueError"
        assert failure.elapsed < timeout / 3  # the error came back, not the timeout
    stats = target.reply_stats
    assert stats.received == len(items)  # one outcome each, though some came twice
    assert stats.duplicates >= 10  # 25 items were delivered twice: most came back in the run
    # Never more than `cap` items unanswered, so never more on the queue than `cap`, plus what
    # is answered but not deleted yet (the event source deletes a batch once the handler
    # returned, after the replies went out), plus refused records (left for SQS to deliver
    # again, reported in batchItemFailures) whose items ended.
    assert len(samples) > 3
    assert max(waiting) == cap
    assert 0 < max(samples) <= cap + pollers * batch_size + len(failures)
    assert not await exists(aws, fanin.last_url)


@pytest.mark.slow
async def test_at_the_deadline_unanswered_items_time_out_and_the_queue_is_deleted(
    aws: LocalAws,
) -> None:
    queue_url = await work_queue(aws, batch_size=1, pollers=4)
    target = SqsTarget(
        queue_url, task="nap", replies=True, endpoint_url=aws.endpoint_url, region_name="us-east-1"
    )
    naps = [0, 0, 0, 20, 0, 20]
    started = time.monotonic()
    result = await dispatch_many(target, naps, concurrency=6, deadline=4)
    assert time.monotonic() - started < 10
    assert [o.status for o in result] == [
        Status.TIMED_OUT if seconds else Status.SUCCEEDED for seconds in naps
    ]
    assert target.fanin is not None
    assert not await exists(aws, target.fanin.last_url)


@pytest.mark.slow
async def test_a_cancelled_fan_out_deletes_its_reply_queue(aws: LocalAws) -> None:
    queue_url = await work_queue(aws, batch_size=1, pollers=2)
    target = SqsTarget(
        queue_url, task="nap", replies=True, endpoint_url=aws.endpoint_url, region_name="us-east-1"
    )
    assert target.fanin is not None
    running = asyncio.create_task(dispatch_many(target, [0, 0, 20, 20], concurrency=4))
    # The quick ones came back: the queue is in use (a counter another task updates).
    await eventually(lambda: target.reply_stats.received >= 2)
    reply_url = target.fanin.last_url
    assert await exists(aws, reply_url)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert not await exists(aws, reply_url)


@pytest.mark.slow
async def test_event_replies_and_crashes_through_the_on_failure_destination(
    aws: LocalAws,
) -> None:
    target = LambdaTarget(
        "fanin-event",
        task="fragile",
        invocation_type="Event",
        replies=True,
        endpoint_url=aws.lambda_endpoint_url,
        sqs_endpoint_url=aws.endpoint_url,
        region_name="us-east-1",
    )
    assert target.fanin is not None
    items = list(range(100))
    async with target.opened(concurrency=10):
        aws.add_function(
            FunctionConfig(
                "fanin-event",
                WORKER,
                timeout=30,
                code_paths=[FUNCTIONS],
                # Injected crashes kill the environment after the task ran (its reply is out).
                faults=Faults(crash=0.1, seed=3),
                event_retries=0,
                on_failure=target.fanin.last_url,
            )
        )
        result = await dispatch_many(target, items, concurrency=10, timeout=30)
    expected_failures = {n: "Runtime.ExitError" for n in items if crashes(n)}
    expected_failures |= {n: "ValueError" for n in items if refused(n) and not crashes(n)}
    for outcome in result:
        if outcome.index not in expected_failures:
            assert outcome.value == {"n": outcome.index, "square": outcome.index**2}
            continue
        assert outcome.status is Status.FAILED, outcome  # never left to time out
        assert isinstance(outcome.error, TaskFailed)
        assert outcome.error.remote_type == expected_failures[outcome.index]
        assert outcome.elapsed < 15
    stats = target.reply_stats
    # A task error replies, then Lambda's record of the failed invoke comes: a duplicate; so
    # does the record of an environment the faults killed after its task replied (the seed
    # injects several).
    assert stats.duplicates > len([n for n in items if refused(n) and not crashes(n)])
    assert stats.received == len(items)
    assert not await exists(aws, target.fanin.last_url)


@pytest.mark.slow
async def test_two_fan_outs_share_a_reply_queue_and_each_gets_its_own(aws: LocalAws) -> None:
    queue_url = await work_queue(aws)
    reply_url = await aws.create_queue(f"replies-{uuid.uuid4().hex[:8]}")
    first, second = sqs_target(aws, queue_url, reply_url), sqs_target(aws, queue_url, reply_url)
    mine, theirs = list(range(80)), list(range(1000, 1080))
    a, b = await asyncio.gather(
        dispatch_many(first, mine, concurrency=10, timeout=30),
        dispatch_many(second, theirs, concurrency=10, timeout=30),
    )
    for result, items in ((a, mine), (b, theirs)):
        assert result.values() == [{"n": n, "square": n * n} for n in items if not refused(n)]
        assert [o.index for o in result.failures()] == [
            i for i, n in enumerate(items) if refused(n)
        ]
    assert first.reply_stats is second.reply_stats  # one queue, one router in this process
    assert first.reply_stats.received == len(mine) + len(theirs)
    assert first.reply_stats.strays == 0
    assert await exists(aws, reply_url)  # the user's queue is theirs to delete
