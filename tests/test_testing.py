"""The helpers users import from aiofanout.testing, used as a user would."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from aiofanout import LambdaTarget, SqsTarget, dispatch_many
from aiofanout.local import FunctionConfig, LocalAws
from aiofanout.testing import (
    LambdaContext,
    MotoServer,
    eventually,
    eventually_sync,
    sqs_event,
    sqs_record,
)

FUNCTIONS = str(Path(__file__).with_name("lambda_functions"))


@pytest.mark.slow
async def test_the_local_aws_fixture_runs_a_function(local_aws: LocalAws) -> None:
    local_aws.add_function(FunctionConfig("echo", "plain.echo", code_paths=[FUNCTIONS]))
    target = LambdaTarget(
        "echo", task=None, endpoint_url=local_aws.lambda_endpoint_url, region_name="us-east-1"
    )
    result = await dispatch_many(target, [{"a": 1}], concurrency=1)
    assert result.values() == [{"a": 1}]


@pytest.mark.slow
async def test_the_moto_server_fixture_serves_sqs(moto_server: MotoServer) -> None:
    import aioboto3

    session = aioboto3.Session(region_name="us-east-1")
    async with session.client("sqs", endpoint_url=moto_server.endpoint_url) as sqs:
        url = (await sqs.create_queue(QueueName="fixture-q"))["QueueUrl"]
        target = SqsTarget(url, task=None, client=sqs)
        assert (await dispatch_many(target, [1, 2, 3], concurrency=1)).ok
        got = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        assert sorted(json.loads(m["Body"]) for m in got["Messages"]) == [1, 2, 3]


def test_the_lambda_context_runs_down_or_follows_a_script() -> None:
    scripted = LambdaContext(clock=lambda: 1234)
    assert scripted.get_remaining_time_in_millis() == 1234
    real = LambdaContext(remaining_ms=60_000)
    assert 59_000 < real.get_remaining_time_in_millis() <= 60_000
    assert isinstance(real.memory_limit_in_mb, str)


def test_sqs_events_have_the_shape_lambda_sends() -> None:
    event: dict[str, Any] = sqs_event(["a", "b"], fifo=True)
    records = event["Records"]
    assert [r["body"] for r in records] == ["a", "b"]
    for record in records:
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"].endswith(".fifo")
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
        assert "MessageGroupId" in record["attributes"]
    with pytest.raises(ValueError, match="loopback"):
        MotoServer(host="10.0.0.1")


@pytest.mark.slow
def test_importing_aiofanout_testing_loads_nothing_that_needs_the_local_extra() -> None:
    import subprocess
    import sys

    check = (
        "import sys, aiofanout.testing, aiofanout.local\n"
        "heavy = ['aiohttp', 'aioboto3', 'aiobotocore', 'aiofanout.local._runtime',"
        " 'aiofanout.local._stack', 'aiofanout.local._sandbox', 'aiofanout.local._control_plane']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""


def test_the_sqs_record_helper_and_the_event_source_build_the_same_shape() -> None:
    from aiofanout.local._event_sources import record_of

    helper = sqs_record("hello", queue="work", message_id="m-1")
    received = {
        "MessageId": "m-1",
        "ReceiptHandle": helper["receiptHandle"],
        "Body": "hello",
        "Attributes": helper["attributes"],
        "MD5OfBody": helper["md5OfBody"],
    }
    assert record_of(received, helper["eventSourceARN"]) == helper


def test_public_objects_of_local_and_testing_show_their_public_module() -> None:
    import inspect

    import aiofanout.local
    import aiofanout.testing

    for module in (aiofanout.local, aiofanout.testing):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__module__ == module.__name__, (module.__name__, name)


async def test_eventually_returns_the_first_truthy_value_of_a_sync_or_async_condition() -> None:
    calls: list[int] = []

    def third_time() -> int:
        calls.append(1)
        return len(calls) if len(calls) >= 3 else 0

    assert await eventually(third_time, interval=0) == 3

    async def answer() -> str:
        return "ready"

    assert await eventually(answer) == "ready"
    assert await eventually(lambda: asyncio.to_thread(lambda: [1])) == [1]


async def test_eventually_names_the_condition_and_its_last_value_when_it_gives_up() -> None:
    def queue_depth_is_zero() -> int:
        return 0

    with pytest.raises(AssertionError, match=r"queue_depth_is_zero did not come true in 0.05 s"):
        await eventually(queue_depth_is_zero, timeout=0.05, interval=0.01)
    seen: list[int] = []
    with pytest.raises(AssertionError, match=r"`.*lambda: seen.*`.*\(last value: \[\]\)"):
        await eventually(lambda: seen, timeout=0.05, interval=0.01)


async def test_eventually_lets_an_error_of_the_condition_through_at_once() -> None:
    def broken() -> bool:
        raise KeyError("gone")

    with pytest.raises(KeyError):
        await eventually(broken, timeout=60)


def test_eventually_sync_polls_in_this_thread() -> None:
    started = time.monotonic()
    assert eventually_sync(lambda: time.monotonic() - started > 0.02, interval=0.005)
    with pytest.raises(AssertionError, match=r"\(last value: None\)"):
        eventually_sync(lambda: None, timeout=0.03, interval=0.01)
