"""``aiofanout.sync``: fan out from code without a loop, on the library's own loop, kept warm."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

import aiofanout
import aiofanout.sync
from aiofanout import SqsTarget, TaskFailed, UsageError
from aiofanout.targets import Sent
from aiofanout.testing import MotoServer

REGION = "us-east-1"
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


@pytest.fixture(autouse=True)
def closed_after() -> Iterator[None]:
    yield
    aiofanout.sync.close()  # each test starts on a fresh library loop


def test_from_a_plain_thread_the_work_runs_on_one_library_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def double(n: int) -> int:
        loops.append(asyncio.get_running_loop())
        return 2 * n

    def nested(n: int) -> int:  # a sync target runs in a worker thread: it may call sync again
        return aiofanout.sync.dispatch(double, n) + 1

    result = aiofanout.sync.dispatch_many(double, range(5), concurrency=2)
    assert isinstance(result, aiofanout.FanoutResult)
    assert result.values() == [0, 2, 4, 6, 8]
    assert aiofanout.sync.dispatch(double, 21) == 42
    assert aiofanout.sync.dispatch(nested, 3) == 7
    assert len(set(loops)) == 1  # kept between calls
    assert loops[0] is not None
    with pytest.raises(TaskFailed, match="bad"):
        aiofanout.sync.dispatch(_fails, 1)


async def _fails(n: int) -> int:
    raise TaskFailed("bad")


def test_the_callers_context_goes_along() -> None:
    async def seen(_: int) -> str:
        return request_id.get()

    def in_thread(name: str) -> str:
        request_id.set(name)
        return aiofanout.sync.dispatch(seen, 0)

    with ThreadPoolExecutor(4) as pool:
        seen_by = list(pool.map(in_thread, ["a", "b", "c", "d"]))
    assert seen_by == ["a", "b", "c", "d"]


async def test_inside_a_running_loop_it_says_to_await_instead() -> None:
    async def echo(n: int) -> int:
        return n

    with pytest.raises(UsageError, match=r"running event loop.*await aiofanout\.dispatch_many\("):
        aiofanout.sync.dispatch_many(echo, [1], concurrency=1)
    with pytest.raises(UsageError, match=r"await aiofanout\.dispatch\("):
        aiofanout.sync.dispatch(echo, 1)
    assert await aiofanout.dispatch(echo, 2) == 2  # the async form, right there


class CountingSqsTarget(SqsTarget):
    """A real SqsTarget that counts the clients it makes and lets go of."""

    acquired = 0
    released = 0

    async def acquire(self, *, concurrency: int, timeout: float | None) -> Any:
        self.acquired += 1
        return await super().acquire(concurrency=concurrency, timeout=timeout)

    async def release(self, resource: Any) -> None:
        self.released += 1
        await super().release(resource)


def test_a_target_is_opened_once_for_many_calls_from_many_threads(moto: MotoServer) -> None:
    sqs = boto3.client("sqs", endpoint_url=moto.endpoint_url, region_name=REGION)
    url = sqs.create_queue(QueueName=f"sync-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    target = CountingSqsTarget(
        url, task="resize", endpoint_url=moto.endpoint_url, region_name=REGION
    )
    try:
        first = aiofanout.sync.dispatch(target, "a.png")
        with ThreadPoolExecutor(6) as pool:
            sent = list(pool.map(lambda i: aiofanout.sync.dispatch(target, f"{i}.png"), range(12)))
        many = aiofanout.sync.dispatch_many(target, ["x.png", "y.png"], concurrency=2)
        assert many.ok, many.failures()
        assert isinstance(first, Sent)
        assert len({s.message_id for s in [first, *sent]}) == 13
        assert (target.acquired, target.released) == (1, 0)  # one client, kept warm
        with pytest.raises(UsageError, match=r"open on another event loop.*sync\.close\(\)"):
            asyncio.run(
                aiofanout.dispatch(target, "elsewhere.png")
            )  # its client is the sync loop's
        aiofanout.sync.close()
        assert target.released == 1
        assert isinstance(asyncio.run(aiofanout.dispatch(target, "here.png")), Sent)
        assert isinstance(aiofanout.sync.dispatch(target, "again.png"), Sent)  # a new loop
        assert target.acquired == 3
    finally:
        sqs.delete_queue(QueueUrl=url)


def test_at_interpreter_exit_the_warm_targets_and_the_loop_close() -> None:
    script = textwrap.dedent(
        """
        import threading
        import aiofanout.sync
        from aiofanout.targets import SharedTarget

        class Noted(SharedTarget):
            async def acquire(self, *, concurrency, timeout):
                print("acquired", flush=True)
                return object()

            async def release(self, resource):
                print("released", flush=True)

            async def call(self, payload, *, timeout):
                with self.lease():
                    return payload

        target = Noted()
        print(aiofanout.sync.dispatch(target, 5), aiofanout.sync.dispatch(target, 6))
        print([t.name for t in threading.enumerate() if t.name.startswith("aiofanout")])
        """
    )
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["acquired", "5 6", "['aiofanout-sync-loop']", "released"]
    assert done.stderr == ""


def test_the_loop_thread_is_a_daemon_and_close_joins_it() -> None:
    async def echo(n: int) -> int:
        return n

    async def closes_from_the_loop(n: int) -> int:
        aiofanout.sync.close()
        return n

    with pytest.raises(UsageError, match=r"library's own loop"):
        aiofanout.sync.dispatch(closes_from_the_loop, 1)
    aiofanout.sync.dispatch(echo, 1)
    [thread] = [t for t in threading.enumerate() if t.name == "aiofanout-sync-loop"]
    assert thread.daemon
    aiofanout.sync.close()
    assert not thread.is_alive()
