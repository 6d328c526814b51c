"""``SqsTarget(message_attributes=...)`` on the real moto server, on both client paths (lean and
aioboto3, see conftest): the attributes arrive on the received message with their types and
values, read back by a plain aioboto3 client as any consumer would."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from aiofanout import (
    ClaimCheck,
    PayloadLimits,
    PayloadTooLarge,
    SqsTarget,
    Status,
    UsageError,
    dispatch_many,
)
from aiofanout.testing import MotoServer
from aiofanout.wire import decode_task


def on_both_client_paths(test: Any) -> Any:
    """A test against moto, run once per client path, on the module's loop (as its client)."""
    return pytest.mark.usefixtures("aws_client_path")(
        pytest.mark.asyncio(loop_scope="module")(test)
    )


REGION = "us-east-1"
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/q"  # for targets never opened


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def consumer(moto: MotoServer) -> AsyncIterator[Any]:
    """A plain aioboto3 SQS client: what reads the messages, as a queue's consumer would."""
    import aioboto3

    session = aioboto3.Session(region_name=REGION)
    async with session.client("sqs", endpoint_url=moto.endpoint_url) as sqs:
        yield sqs


async def new_queue(sqs: Any) -> str:
    return str((await sqs.create_queue(QueueName=f"attrs-{uuid.uuid4().hex[:10]}"))["QueueUrl"])


async def received(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message the queue holds now (sent before this is called), with all attributes."""
    messages: list[dict[str, Any]] = []
    while batch := (
        await sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
    ).get("Messages", []):
        messages.extend(batch)
    return messages


def sender(moto: MotoServer, url: str, **options: Any) -> SqsTarget:
    return SqsTarget(
        url, task="handle", endpoint_url=moto.endpoint_url, region_name=REGION, **options
    )


@on_both_client_paths
async def test_each_attribute_arrives_with_its_type_and_value(
    moto: MotoServer, consumer: Any
) -> None:
    url = await new_queue(consumer)
    given = {"kind": "image", "size": 500, "ratio": 0.5, "thumb": b"\x00\xff\x10"}
    result = await dispatch_many(
        sender(moto, url, message_attributes=given), ["a", "b"], concurrency=1
    )
    assert result.ok, result.failures()
    messages = await received(consumer, url)
    assert len(messages) == 2
    for message in messages:
        assert message["MessageAttributes"] == {
            "kind": {"DataType": "String", "StringValue": "image"},
            "size": {"DataType": "Number", "StringValue": "500"},
            "ratio": {"DataType": "Number", "StringValue": "0.5"},
            "thumb": {"DataType": "Binary", "BinaryValue": b"\x00\xff\x10"},
        }


@on_both_client_paths
async def test_a_function_of_the_item_gives_each_message_its_own(
    moto: MotoServer, consumer: Any
) -> None:
    url = await new_queue(consumer)
    tagged = sender(moto, url, message_attributes=lambda key: {"tenant": key.split("/")[0]})
    keys = ["acme/1.png", "globex/2.png", "acme/3.png"]
    assert (await dispatch_many(tagged, keys, concurrency=2)).ok
    tenant_of = {
        str(decode_task(m["Body"]).args[0]): m["MessageAttributes"]["tenant"]["StringValue"]
        for m in await received(consumer, url)
    }
    assert tenant_of == {"acme/1.png": "acme", "globex/2.png": "globex", "acme/3.png": "acme"}


@on_both_client_paths
async def test_an_item_with_a_bad_attribute_fails_unsent_and_the_others_go(
    moto: MotoServer, consumer: Any
) -> None:
    url = await new_queue(consumer)
    tags = {"one": "a", "two": ["b", "c"], "three": "d"}  # "two" gives SQS a list
    tagged = sender(moto, url, message_attributes=lambda key: {"tag": tags[key]})
    result = await dispatch_many(tagged, list(tags), concurrency=1)
    assert [o.status for o in result] == [Status.SUCCEEDED, Status.FAILED, Status.SUCCEEDED]
    failed = list(result)[1]
    assert isinstance(failed.error, UsageError)
    assert "SQS has no list type" in str(failed.error)
    assert failed.attempts == 0  # never sent
    sent = sorted(str(decode_task(m["Body"]).args[0]) for m in await received(consumer, url))
    assert sent == ["one", "three"]


@pytest.mark.parametrize(
    ("attributes", "says"),
    [
        ({"tags": ["a", "b"]}, "SQS has no list type"),
        ({"tags": ("a",)}, "SQS has no list type"),
        ({f"a{n}": "x" for n in range(11)}, "SQS takes at most 10"),
        ({"AWS.trace": "x"}, "reserved"),
        ({"a..b": "x"}, "period"),
        ({"kind type": "x"}, "A-Z, a-z, 0-9"),
        ({"kind": ""}, "SQS refuses an empty value"),
        ({"flag": True}, "no SQS type; give the string 'true'$"),
        ({"where": {"city": "Oslo"}}, r"dict has no SQS type; .*bytes \(Binary\)$"),
    ],
)
def test_a_bad_fixed_attribute_is_refused_when_the_target_is_made(
    attributes: dict[str, Any], says: str
) -> None:
    with pytest.raises(UsageError, match=says):
        SqsTarget(QUEUE, task="t", message_attributes=attributes)


def test_the_attributes_count_toward_the_limit_and_the_claim_check_decision() -> None:
    bare = SqsTarget(QUEUE, task="t").prepare("x" * 400)
    given: dict[str, Any] = {"kind": "image", "thumb": b"\x00\x01"}  # 4+6+5 and 5+6+2 bytes
    limit = len(bare) + 20  # the body fits, the body and its attributes do not
    limits = PayloadLimits(sqs_message=limit)
    tight = SqsTarget(QUEUE, task="t", message_attributes=given, limits=limits)
    with pytest.raises(PayloadTooLarge, match="28 of them its attributes"):
        tight.prepare("x" * 400)
    claimed = SqsTarget(
        QUEUE, task="t", message_attributes=given, limits=limits, claim_check=ClaimCheck(bucket="b")
    ).prepare("x" * 400)
    assert claimed.claim is not None  # the arguments go to S3: body and attributes fit
    assert len(claimed) <= limit


@on_both_client_paths
async def test_the_lean_client_receives_a_binary_attribute_as_bytes_as_botocore_does(
    moto: MotoServer, consumer: Any
) -> None:
    from aiofanout._lean_aws import lean_client

    url = await new_queue(consumer)
    given = {"kind": "image", "thumb": b"\x00\xff"}
    assert (
        await dispatch_many(sender(moto, url, message_attributes=given), ["a"], concurrency=1)
    ).ok
    lean = await lean_client(
        "sqs", endpoint_url=moto.endpoint_url, region_name=REGION,
        pool=1, read_timeout=5, connect_timeout=5,
    )  # fmt: skip
    async with lean:
        got = await lean.receive_message(QueueUrl=url, MessageAttributeNames=["All"])
    [message] = got["Messages"]
    assert message["MessageAttributes"]["thumb"] == {
        "DataType": "Binary",
        "BinaryValue": b"\x00\xff",
    }
    assert message["MessageAttributes"]["kind"]["StringValue"] == "image"
