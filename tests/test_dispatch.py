"""``aiofanout.dispatch``: one item through the engine's policy, its value or its error."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

import aiofanout
from aiofanout import Call, LambdaTarget, Retry, SqsTarget, TaskFailed, Throttled, UsageError
from aiofanout.errors import InvalidArguments
from aiofanout.local import FunctionConfig, LocalAws
from aiofanout.targets import Sent
from aiofanout.testing import MotoServer, eventually
from aiofanout.wire import decode_task
from aiofanout.worker import App

from .test_virtual_clock import in_virtual_time

REGION = "us-east-1"
FUNCTIONS = str(Path(__file__).with_name("lambda_functions"))


async def test_dispatch_returns_the_value_of_an_async_and_of_a_sync_function() -> None:
    async def double(n: int) -> int:
        return 2 * n

    def triple(n: int) -> int:
        return 3 * n

    assert await aiofanout.dispatch(double, 21) == 42
    assert await aiofanout.dispatch(triple, 5) == 15


async def test_dispatch_retries_as_dispatch_many_does() -> None:
    calls: list[int] = []

    async def flaky(n: int) -> int:
        calls.append(n)
        if len(calls) < 3:
            raise Throttled("slow down", retry_after=0)
        return n

    assert await aiofanout.dispatch(flaky, 7, retry=Retry(attempts=3, base=0.001)) == 7
    assert calls == [7, 7, 7]


async def test_dispatch_raises_the_items_own_error_with_a_note_of_its_attempts() -> None:
    async def broken(n: int) -> int:
        raise TaskFailed("no such image", remote_type="FileNotFoundError")

    with pytest.raises(TaskFailed, match="no such image") as caught:
        await aiofanout.dispatch(broken, 1, retry=2)
    assert caught.value.remote_type == "FileNotFoundError"
    assert caught.value.__notes__ == ["aiofanout.dispatch: the item failed after 1 attempt"]

    async def retryable(n: int) -> int:
        raise Throttled("later", retry_after=0)

    with pytest.raises(Throttled) as throttled:
        await aiofanout.dispatch(retryable, 1, retry=Retry(attempts=2, base=0.001, throttles=0))
    assert throttled.value.__notes__ == ["aiofanout.dispatch: the item failed after 2 attempts"]


def test_dispatch_times_out_by_the_engines_timer() -> None:
    async def main() -> None:
        async def slow(n: int) -> int:
            await asyncio.sleep(10)
            return n

        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await aiofanout.dispatch(slow, 1, timeout=3, retry=1)
        assert loop.time() - started == pytest.approx(3, abs=0.01)

    in_virtual_time(main)


async def test_an_item_the_deadline_never_started_raises_fanout_failed() -> None:
    async def echo(n: int) -> int:
        return n

    passed = aiofanout.Deadline(at=asyncio.get_running_loop().time() - 1)
    with pytest.raises(aiofanout.FanoutFailed) as caught:
        await aiofanout.dispatch(echo, 1, deadline=passed)
    [outcome] = caught.value.outcomes
    assert outcome.status is aiofanout.Status.SKIPPED


async def test_dispatch_refuses_options_meant_for_many_items() -> None:
    async def echo(n: int) -> int:
        return n

    with pytest.raises(UsageError, match=r"unknown options \['concurrency'\].*dispatch_many"):
        await aiofanout.dispatch(echo, 1, concurrency=4)  # type: ignore[call-overload]


async def test_dispatch_to_sqs_returns_the_sends_ids(
    moto: MotoServer, sqs: Any, queue_url: str
) -> None:
    target = SqsTarget(queue_url, task="resize", endpoint_url=moto.endpoint_url, region_name=REGION)
    sent = await aiofanout.dispatch(target, "a.png")
    assert isinstance(sent, Sent)
    got = await sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5)
    [message] = got["Messages"]
    assert sent.message_id == message["MessageId"]
    assert sent.envelope_id == decode_task(message["Body"]).id
    assert sent.request_id is None
    # dispatch_many keeps giving the ids as JSON, as a journal stores them
    result = await aiofanout.dispatch_many(target, ["b.png"], concurrency=1)
    assert set(result[0].value) == {"message_id", "envelope_id"}


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_dispatch_of_a_lambda_event_returns_its_request_and_envelope_ids(
    aws: LocalAws, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    name = f"fn-{uuid.uuid4().hex[:8]}"
    aws.add_function(
        FunctionConfig(
            name,
            "app_worker.lambda_handler",
            code_paths=[FUNCTIONS],
            environment={"NOTES_FILE": str(notes)},
        )
    )
    event = LambdaTarget(
        name,
        task="square",
        invocation_type="Event",
        endpoint_url=aws.lambda_endpoint_url,
        region_name=REGION,
    )
    sent = await aiofanout.dispatch(event, 9)
    assert isinstance(sent, Sent)
    assert sent.request_id is not None
    assert len(sent.request_id) == 36
    assert sent.envelope_id
    assert sent.message_id is None
    await eventually(lambda: notes.exists() and notes.read_text() == "square 9\n", timeout=20)
    waits = LambdaTarget(
        name, task="square", endpoint_url=aws.lambda_endpoint_url, region_name=REGION
    )
    assert await aiofanout.dispatch(waits, 12, timeout=20) == 144  # RequestResponse: the value


async def test_dispatch_to_a_task_runs_it_eagerly_through_the_envelope() -> None:
    app = App("eager")

    @app.task
    async def add(a: int, b: int) -> int:
        return a + b

    assert await aiofanout.dispatch(add, Call(2, 3)) == 5
    with pytest.raises(InvalidArguments):
        await aiofanout.dispatch(add, Call(2, "three"))
