"""``SnsTarget(message_attributes=...)`` and subscription filter policies: one topic, a queue per
kind of work, each queue subscribed with its own ``FilterPolicy`` on the real moto server (which
applies filter policies as SNS does, synchronously inside the publish: once ``dispatch_many``
returns, every queue holds all it will get). A worker per queue runs only its own."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from aiofanout import (
    ClaimCheck,
    PayloadLimits,
    PayloadTooLarge,
    SnsTarget,
    Status,
    UsageError,
    dispatch_many,
)
from aiofanout.testing import LambdaContext, MotoServer, sqs_event
from aiofanout.worker import App

on_the_module_loop = pytest.mark.asyncio(loop_scope="module")  # (the clients are the module's)

ACCOUNT = "arn:aws:sqs:us-east-1:123456789012:{}"  # moto's default account
IMAGES = {"kind": ["image"]}
LARGE_VIDEOS = {"kind": ["video"], "size": [{"numeric": [">=", 100]}]}
HANDLED = {"task": ["handle"]}  # FilterPolicyScope MessageBody: a field of the envelope


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def clients(moto: MotoServer) -> AsyncIterator[tuple[Any, Any]]:
    import aioboto3

    session = aioboto3.Session(region_name="us-east-1")
    async with (
        session.client("sns", endpoint_url=moto.endpoint_url) as sns,
        session.client("sqs", endpoint_url=moto.endpoint_url) as sqs,
    ):
        yield sns, sqs


async def new_topic(clients: tuple[Any, Any]) -> str:
    sns, _ = clients
    return str((await sns.create_topic(Name=f"work-{uuid.uuid4().hex[:8]}"))["TopicArn"])


async def subscribed_queue(
    clients: tuple[Any, Any], topic_arn: str, policy: dict[str, Any] | None, **attributes: str
) -> str:
    sns, sqs = clients
    name = f"filtered-{uuid.uuid4().hex[:8]}"
    url = str((await sqs.create_queue(QueueName=name))["QueueUrl"])
    if policy is not None:
        attributes["FilterPolicy"] = json.dumps(policy)
    await sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=ACCOUNT.format(name), Attributes=attributes
    )
    return url


async def drained(clients: tuple[Any, Any], url: str) -> list[str]:
    """Every body the queue holds now (moto delivered them inside the publish)."""
    _, sqs = clients
    bodies: list[str] = []
    while messages := (await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)).get(
        "Messages", []
    ):
        bodies.extend(m["Body"] for m in messages)
    return bodies


def publisher(moto: MotoServer, topic_arn: str, **options: Any) -> SnsTarget:
    return SnsTarget(
        topic_arn, task="handle", endpoint_url=moto.endpoint_url, region_name="us-east-1",
        **options,
    )  # fmt: skip


async def jobs_run_by_a_worker(bodies: list[str]) -> list[int]:
    """The job ids an ``App`` on this queue ran, from its messages as Lambda hands them over."""
    app, ran = App("filtered-worker"), []

    @app.task
    async def handle(job: dict[str, Any]) -> None:
        ran.append(job["id"])

    assert await app.handle(sqs_event(bodies), LambdaContext()) == {"batchItemFailures": []}
    return sorted(ran)


JOBS = [
    {"id": 0, "kind": "image", "size": 5},
    {"id": 1, "kind": "video", "size": 500},
    {"id": 2, "kind": "image", "size": 700},
    {"id": 3, "kind": "video", "size": 50},  # a video, but too small for the video queue
    {"id": 4, "kind": "text", "size": 1},  # no queue but the one filtering on the body
]


@on_the_module_loop
async def test_each_queue_takes_only_the_messages_its_filter_policy_accepts(
    moto: MotoServer, clients: tuple[Any, Any]
) -> None:
    topic_arn = await new_topic(clients)
    images = await subscribed_queue(clients, topic_arn, IMAGES, RawMessageDelivery="true")
    videos = await subscribed_queue(clients, topic_arn, LARGE_VIDEOS)  # SNS notifications
    handled = await subscribed_queue(
        clients, topic_arn, HANDLED, FilterPolicyScope="MessageBody", RawMessageDelivery="true"
    )
    routed = publisher(
        moto, topic_arn, message_attributes=lambda job: {"kind": job["kind"], "size": job["size"]}
    )
    result = await dispatch_many(routed, JOBS, concurrency=2)
    assert all(outcome.ok for outcome in result)
    image_bodies, video_bodies = await drained(clients, images), await drained(clients, videos)
    assert await jobs_run_by_a_worker(image_bodies) == [0, 2]
    assert await jobs_run_by_a_worker(video_bodies) == [1]
    assert await jobs_run_by_a_worker(await drained(clients, handled)) == [0, 1, 2, 3, 4]
    attributes = json.loads(video_bodies[0])["MessageAttributes"]  # as SNS delivered them
    assert attributes == {
        "kind": {"Type": "String", "Value": "video"},
        "size": {"Type": "Number", "Value": "500"},
    }


@on_the_module_loop
async def test_fixed_attributes_go_with_every_message_and_arrays_match_any_element(
    moto: MotoServer, clients: tuple[Any, Any]
) -> None:
    topic_arn = await new_topic(clients)
    images = await subscribed_queue(clients, topic_arn, IMAGES, RawMessageDelivery="true")
    videos = await subscribed_queue(clients, topic_arn, LARGE_VIDEOS, RawMessageDelivery="true")
    tagged = publisher(moto, topic_arn, message_attributes={"kind": ["image", "thumbnail"]})
    assert all(o.ok for o in await dispatch_many(tagged, JOBS[:3], concurrency=1))
    assert await jobs_run_by_a_worker(await drained(clients, images)) == [0, 1, 2]
    assert await drained(clients, videos) == []


@on_the_module_loop
async def test_an_item_with_a_bad_attribute_fails_unsent_and_the_others_go(
    moto: MotoServer, clients: tuple[Any, Any]
) -> None:
    topic_arn = await new_topic(clients)
    everything = await subscribed_queue(clients, topic_arn, None, RawMessageDelivery="true")
    routed = publisher(moto, topic_arn, message_attributes=lambda job: {"kind": job["kind"]})
    result = await dispatch_many(routed, [*JOBS[:2], {"id": 9, "kind": ""}], concurrency=1)
    assert [o.status for o in result] == [Status.SUCCEEDED, Status.SUCCEEDED, Status.FAILED]
    failed = list(result)[2]
    assert isinstance(failed.error, UsageError)
    assert "'kind' is empty" in str(failed.error)
    assert failed.attempts == 0  # never sent
    assert await jobs_run_by_a_worker(await drained(clients, everything)) == [0, 1]


@pytest.mark.parametrize(
    ("attributes", "says"),
    [
        ({f"a{n}": "x" for n in range(11)}, "at most 10"),
        ({"AWS.trace": "x"}, "reserved"),
        ({"amazon.x": "x"}, "reserved"),
        ({".kind": "x"}, "period"),
        ({"kind.": "x"}, "period"),
        ({"a..b": "x"}, "period"),
        ({"kind type": "x"}, "A-Z, a-z, 0-9"),
        ({"k" * 257: "x"}, "1-256 characters"),
        ({"kind": ""}, "empty"),
        ({"kind": b""}, "empty"),
        ({"flag": True}, "the string 'true' or the array \\[true\\]"),
        ({"size": float("nan")}, "not a number"),
        ({"size": 10**127}, "not a number"),
        ({"where": {"city": "Oslo"}}, "dict has no SNS type"),
        ({"tags": ["a", {"b": 1}]}, "list has no SNS type"),
    ],
)
def test_a_bad_fixed_attribute_is_refused_when_the_target_is_made(
    attributes: dict[str, Any], says: str
) -> None:
    with pytest.raises(UsageError, match=says):
        SnsTarget("arn:aws:sns:us-east-1:123456789012:t", task="t", message_attributes=attributes)


def test_each_python_type_is_its_sns_type_and_counts_toward_the_limit() -> None:
    given: dict[str, Any] = {
        "s": "x",
        "n": 2,
        "f": 0.5,
        "b": b"\x00\x01",
        "a": ["x", 1, None, False],
    }
    target = SnsTarget("arn:aws:sns:us-east-1:1:t", task="t", message_attributes=given)
    message = target.prepare(1)
    assert message.attributes == {
        "s": {"DataType": "String", "StringValue": "x"},
        "n": {"DataType": "Number", "StringValue": "2"},
        "f": {"DataType": "Number", "StringValue": "0.5"},
        "b": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        "a": {"DataType": "String.Array", "StringValue": '["x", 1, null, false]'},
    }
    bare = SnsTarget("arn:aws:sns:us-east-1:1:t", task="t").prepare(1)
    # name + type + value of each: 1+6+1, 1+6+1, 1+6+3, 1+6+2, 1+12+21
    assert len(message) - len(bare) == 8 + 8 + 10 + 9 + 34
    limit = len(bare) + 50  # the body fits, the body and its attributes do not
    tight = SnsTarget(
        "arn:aws:sns:us-east-1:1:t", task="t", message_attributes=given,
        limits=PayloadLimits(sns_message=limit),
    )  # fmt: skip
    with pytest.raises(PayloadTooLarge, match="69 of them its attributes"):
        tight.prepare(1)


def test_an_item_that_fits_only_without_its_attributes_goes_through_the_claim_check() -> None:
    topic, text = "arn:aws:sns:us-east-1:1:t", "x" * 400
    limit = len(SnsTarget(topic, task="t").prepare(text)) + 10  # the body alone fits
    claimed = SnsTarget(
        topic, task="t", message_attributes={"kind": "image"}, claim_check=ClaimCheck(bucket="b"),
        limits=PayloadLimits(sns_message=limit),
    ).prepare(text)  # fmt: skip
    assert claimed.claim is not None  # the arguments go to S3: body and attributes fit
    assert len(claimed) <= limit
