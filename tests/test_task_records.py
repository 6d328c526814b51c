"""Task records: a real worker (the local runtime's awslambdaric processes) writes a record per
task run to moto's DynamoDB, keyed by the envelope id every remote outcome carries."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from aiofanout import LambdaTarget, SqsTarget, dispatch_many, stream
from aiofanout.local import FunctionConfig, LocalAws, stack
from aiofanout.testing import eventually
from aiofanout.worker import TaskRecord, TaskRecords

pytestmark = pytest.mark.asyncio(loop_scope="module")

FUNCTIONS = str(Path(__file__).with_name("lambda_functions"))
TABLE = "task-records"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def aws() -> AsyncIterator[LocalAws]:
    from aiofanout.worker._dynamodb import TABLE_SCHEMA  # the schema TaskRecords shares

    async with stack() as local:
        async with local.client("dynamodb") as dynamodb:
            await dynamodb.create_table(TableName=TABLE, **TABLE_SCHEMA)
        local.add_function(
            FunctionConfig(
                "recorded",
                "peers_worker.lambda_handler",
                timeout=20,
                code_paths=[FUNCTIONS],
                environment={"RECORDS_TABLE": TABLE},
            )
        )
        yield local


def records(aws: LocalAws) -> TaskRecords:
    return TaskRecords(TABLE, endpoint_url=aws.endpoint_url, region_name="us-east-1")


def target(aws: LocalAws, task: str, **options: Any) -> LambdaTarget:
    return LambdaTarget(
        "recorded",
        task=task,
        endpoint_url=aws.lambda_endpoint_url,
        region_name="us-east-1",
        **options,
    )


async def raw_item(aws: LocalAws, envelope_id: str) -> dict[str, Any]:
    async with aws.client("dynamodb") as dynamodb:
        answer = await dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": envelope_id}})
    item: dict[str, Any] = answer["Item"]
    return item


@pytest.mark.slow
async def test_each_run_is_recorded_under_the_envelope_id_of_its_outcome(aws: LocalAws) -> None:
    result = await dispatch_many(target(aws, "square"), [7, -1], concurrency=2)
    ok, failed = list(result)
    assert ok.value == 49
    assert not failed.ok
    assert ok.envelope_id
    assert failed.envelope_id
    assert ok.envelope_id != failed.envelope_id

    done = await records(aws).get(ok.envelope_id)
    assert isinstance(done, TaskRecord)
    assert (done.status, done.task, done.app, done.value, done.value_kept) == (
        "succeeded", "square", "peers-worker", 49, True,
    )  # fmt: skip
    assert done.ended_at is not None
    assert done.started_at <= done.ended_at
    week = done.expires_at - done.started_at
    assert timedelta(days=7) - timedelta(seconds=2) < week <= timedelta(days=7, seconds=1)

    broke = await records(aws).get(failed.envelope_id)
    assert broke is not None
    assert broke.status == "failed"
    assert broke.value is None
    assert (broke.error_type, broke.error_message) == (
        "ValueError", "negative numbers have no place here",
    )  # fmt: skip
    # Never the arguments, the envelope or a secret: only what the run gave back.
    item = await raw_item(aws, ok.envelope_id)
    assert set(item) == {
        "pk", "task", "app", "status", "started_ms", "ended_ms", "value", "value_bytes", "ttl",
    }  # fmt: skip
    assert await records(aws).get(f"never-sent-{uuid.uuid4()}") is None


@pytest.mark.slow
async def test_a_running_record_then_the_end_of_a_fire_and_forget_item(
    aws: LocalAws, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"  # the task runs until it exists: no race with the poll below
    fire = target(aws, "gated", invocation_type="Event")
    fired = await dispatch_many(fire, [str(gate)], concurrency=1)
    [outcome] = list(fired)
    assert outcome.ok
    assert outcome.envelope_id is not None
    reader = records(aws)

    async def status() -> str | None:
        record = await reader.get(outcome.envelope_id or "")
        return None if record is None else record.status

    assert await eventually(status) == "running"
    gate.touch()
    assert await eventually(lambda: _is(status, "succeeded")) is True


async def _is(status: Any, wanted: str) -> bool:
    return bool(await status() == wanted)


@pytest.mark.slow
async def test_a_value_too_big_for_the_item_is_counted_not_kept(aws: LocalAws) -> None:
    [outcome] = list(await dispatch_many(target(aws, "big"), [400_000], concurrency=1))
    assert outcome.ok
    record = await records(aws).get(outcome.envelope_id or "")
    assert record is not None
    assert record.status == "succeeded"
    assert record.value_kept is False
    assert record.value is None
    assert record.value_bytes == 400_002  # the JSON string, quotes included


async def test_queue_outcomes_name_the_envelope_sent(aws: LocalAws) -> None:
    async with aws.client("sqs") as sqs:
        url = (await sqs.create_queue(QueueName=f"named-{uuid.uuid4().hex[:8]}"))["QueueUrl"]
        sent = SqsTarget(url, task="square", endpoint_url=aws.endpoint_url, region_name="us-east-1")
        result = await dispatch_many(sent, [1, 2, 3], concurrency=3)
        ids = {outcome.envelope_id for outcome in result}
        async with stream(sent, [4], concurrency=1) as outcomes:
            ids |= {outcome.envelope_id async for outcome in outcomes}
        bodies: list[dict[str, Any]] = []
        while len(bodies) < 4:
            answer = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            bodies += [json.loads(m["Body"]) for m in answer.get("Messages", [])]
        assert ids == {body["id"] for body in bodies}
        assert len(ids) == 4
    in_process = await dispatch_many(_double, [1], concurrency=1)
    assert [outcome.envelope_id for outcome in in_process] == [None]


async def _double(n: int) -> int:
    return 2 * n
