"""``SnsTarget``: PublishBatch to a topic whose subscriptions reach a real worker: a Lambda
subscription (the moto server hands it to the local runtime as an asynchronous invoke in AWS's
SNS event format) and SQS queues with and without raw delivery (moto delivers, an event source
mapping runs the worker); replies come back through a reply queue."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from aiofanout import (
    ClaimCheck,
    PayloadLimits,
    PayloadTooLarge,
    SnsTarget,
    Status,
    TaskFailed,
    UsageError,
    dispatch,
    dispatch_many,
)
from aiofanout.errors import RequestRejected
from aiofanout.local import EventSourceMapping, FunctionConfig, LocalAws, stack
from aiofanout.targets import Sent
from aiofanout.testing import LambdaContext, eventually, sqs_event
from aiofanout.wire import encode_task
from aiofanout.worker import App

pytestmark = pytest.mark.asyncio(loop_scope="module")

FUNCTIONS = str(Path(__file__).with_name("lambda_functions"))
BUCKET = "sns-claims"
ACCOUNT = "arn:aws:{}:us-east-1:123456789012:{}"  # the local stack's account


def function_arn(name: str) -> str:
    return ACCOUNT.format("lambda", f"function:{name}")


def queue_arn(name: str) -> str:
    return ACCOUNT.format("sqs", name)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def aws() -> AsyncIterator[LocalAws]:
    async with stack() as local:
        async with local.client("s3") as s3:
            await s3.create_bucket(Bucket=BUCKET)
        local.add_function(
            FunctionConfig(
                "sns-worker",
                "peers_worker.lambda_handler",
                timeout=20,
                code_paths=[FUNCTIONS],
                environment={"CLAIM_BUCKET": BUCKET},
            )
        )
        yield local


async def topic(aws: LocalAws, *, fifo: bool = False) -> str:
    name = f"tasks-{uuid.uuid4().hex[:8]}" + (".fifo" if fifo else "")
    attributes = {"FifoTopic": "true"} if fifo else {}  # (moto reads "false" as on)
    async with aws.client("sns") as sns:
        return str((await sns.create_topic(Name=name, Attributes=attributes))["TopicArn"])


async def subscribe_function(aws: LocalAws, topic_arn: str) -> None:
    async with aws.client("sns") as sns:
        await sns.subscribe(
            TopicArn=topic_arn, Protocol="lambda", Endpoint=function_arn("sns-worker")
        )


async def subscribe_queue(aws: LocalAws, topic_arn: str, *, raw: bool, fifo: bool = False) -> str:
    name = f"from-sns-{uuid.uuid4().hex[:8]}" + (".fifo" if fifo else "")
    url = await aws.create_queue(name, **({"FifoQueue": "true"} if fifo else {}))
    attributes = {"RawMessageDelivery": "true"} if raw else {}
    async with aws.client("sns") as sns:
        await sns.subscribe(
            TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn(name), Attributes=attributes
        )
    await aws.add_event_source(EventSourceMapping(url, "sns-worker", batch_size=10, pollers=1))
    return url


def target(aws: LocalAws, topic_arn: str, task: str, **options: Any) -> SnsTarget:
    return SnsTarget(
        topic_arn,
        task=task,
        replies=True,
        endpoint_url=aws.endpoint_url,
        region_name="us-east-1",
        **options,
    )


# -- through real processes ----------------------------------------------------------------------


@pytest.mark.slow
async def test_a_lambda_subscription_runs_each_item_and_replies(aws: LocalAws) -> None:
    topic_arn = await topic(aws)
    await subscribe_function(aws, topic_arn)
    sent = target(aws, topic_arn, "square", limits=PayloadLimits(sns_batch_entries=3))
    result = await dispatch_many(sent, [0, 1, 2, -1], concurrency=4, timeout=20)
    assert result.values()[:3] == [0, 1, 4]  # 4 items, 3 to a batch: two PublishBatch calls
    [failed] = [outcome for outcome in result if not outcome.ok]
    assert isinstance(failed.error, TaskFailed)
    assert failed.error.remote_type == "ValueError"
    assert all(outcome.envelope_id for outcome in result)
    assert sent.reply_stats.received == 4
    assert sent.sender.requests == 2


@pytest.mark.slow
@pytest.mark.parametrize("raw", [False, True], ids=["notification", "raw"])
async def test_queue_subscriptions_with_and_without_raw_delivery(aws: LocalAws, raw: bool) -> None:
    topic_arn = await topic(aws)
    await subscribe_queue(aws, topic_arn, raw=raw)
    result = await dispatch_many(target(aws, topic_arn, "square"), range(8), concurrency=8)
    assert result.values() == [n * n for n in range(8)]


@pytest.mark.slow
async def test_a_fifo_topic_takes_group_and_deduplication_ids(aws: LocalAws) -> None:
    topic_arn = await topic(aws, fifo=True)
    await subscribe_queue(aws, topic_arn, raw=True, fifo=True)
    sent = target(aws, topic_arn, "square", group_id=lambda n: f"g{n % 2}", dedup_id=str)
    result = await dispatch_many(sent, range(6), concurrency=6)
    assert result.values() == [n * n for n in range(6)]


@pytest.mark.slow
async def test_an_item_over_the_sns_limit_goes_through_the_claim_check(aws: LocalAws) -> None:
    topic_arn = await topic(aws)
    await subscribe_function(aws, topic_arn)
    text = "y" * 300_000  # over SNS's 256 KiB
    claims = ClaimCheck(bucket=BUCKET, endpoint_url=aws.endpoint_url, region_name="us-east-1")
    result = await dispatch_many(
        target(aws, topic_arn, "length", claim_check=claims), [text], concurrency=1, timeout=20
    )
    assert result.values() == [300_000]
    async with aws.client("s3") as s3:  # the worker deleted the object once it read it
        assert "Contents" not in await s3.list_objects_v2(Bucket=BUCKET)
    with pytest.raises(PayloadTooLarge, match="claim_check"):
        target(aws, topic_arn, "length").prepare(text)


async def test_fire_and_forget_publishes_in_batches_and_names_each_message(
    aws: LocalAws,
) -> None:
    topic_arn = await topic(aws)
    url = await aws.create_queue(f"plain-{uuid.uuid4().hex[:8]}")
    async with aws.client("sns") as sns:
        await sns.subscribe(
            TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn(url.split("/")[-1])
        )
    limits = PayloadLimits(sns_batch_entries=4)
    fired = SnsTarget(
        topic_arn, task="square", endpoint_url=aws.endpoint_url, region_name="us-east-1",
        limits=limits,
    )  # fmt: skip
    result = await dispatch_many(fired, range(9), concurrency=2)
    assert all(isinstance(value["message_id"], str) for value in result.values())
    assert [value["envelope_id"] for value in result.values()] == [o.envelope_id for o in result]
    sent = await dispatch(fired, 9)  # one item: what identifies the send
    assert isinstance(sent, Sent)
    assert sent.message_id is not None
    assert sent.envelope_id is not None
    async with aws.client("sqs") as sqs:

        async def received() -> list[dict[str, Any]]:
            answer = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            bodies.extend(json.loads(m["Body"]) for m in answer.get("Messages", []))
            return bodies if len(bodies) >= 10 else []

        bodies: list[dict[str, Any]] = []
        notifications = await eventually(received)
    messages = [json.loads(n["Message"]) for n in notifications]
    assert {m["id"] for m in messages} == {o.envelope_id for o in result} | {sent.envelope_id}
    assert sorted(m["args"][0] if "args" in m else 0 for m in messages) == list(range(10))


async def test_per_entry_failures_fail_their_items_alone(aws: LocalAws) -> None:
    topic_arn = await topic(aws, fifo=True)  # no deduplication by content: the id is needed
    sent = SnsTarget(
        topic_arn, task="square", group_id="g", endpoint_url=aws.endpoint_url,
        region_name="us-east-1", dedup_id=lambda n: "" if n == 2 else str(n),
    )  # fmt: skip
    result = await dispatch_many(sent, [1, 2, 3], concurrency=1)
    assert [outcome.status for outcome in result] == [
        Status.SUCCEEDED,
        Status.FAILED,
        Status.SUCCEEDED,
    ]
    failed = list(result)[1]
    assert isinstance(failed.error, RequestRejected)  # the sender's fault: not retried
    assert failed.attempts == 1
    with pytest.raises(UsageError, match="group_id"):
        SnsTarget(topic_arn, task="square")


# -- the worker's side, in process -----------------------------------------------------------------


async def test_the_app_runs_envelopes_of_every_sns_delivery_form() -> None:
    from aiofanout.local._moto._sns_deliveries import sns_lambda_event  # what the server sends

    app = App("in-process")

    @app.task
    async def square(n: int) -> int:
        return n * n

    envelope = encode_task("square", [3], {}, id="e1").decode()
    notification = {
        "Type": "Notification", "MessageId": "m1", "TopicArn": "arn:aws:sns:us-east-1:1:t",
        "Message": envelope, "Timestamp": "2026-12-04T00:00:00.000Z",
    }  # fmt: skip
    lambda_event = sns_lambda_event("arn:aws:sns:us-east-1:1:t:sub", notification)
    assert lambda_event["Records"][0]["Sns"]["Subject"] is None
    [reply] = await app.handle(lambda_event, LambdaContext())
    assert reply["value"] == 9
    batch = sqs_event([json.dumps(notification, indent=2), envelope])  # not raw, then raw
    assert await app.handle(batch, LambdaContext()) == {"batchItemFailures": []}
    bad = sqs_event([json.dumps({**notification, "Message": "not an envelope"}, indent=2)])
    failures = (await app.handle(bad, LambdaContext()))["batchItemFailures"]
    assert len(failures) == 1
