"""Every in-process target of the library passes ``aiofanout.testing.check_target``; broken
targets do not (each check is shown to fail when its property breaks)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from aiofanout import HttpTarget, LambdaTarget, SqsTarget
from aiofanout.errors import NotFound
from aiofanout.targets import Batching, Target
from aiofanout.testing import MotoServer, check_target

from .stubs import Handler, StubServer, lambda_error, lambda_ok

REGION = "us-east-1"


# -- the library's targets -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def served_in_a_thread(handler: Handler) -> AsyncIterator[str]:
    """A stub server on its own event loop, so its tasks are not counted as the target's."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    stub = StubServer(handler)

    async def on_its_loop(coroutine: Any) -> Any:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))

    try:
        await on_its_loop(stub.__aenter__())
        try:
            yield stub.url
        finally:
            await on_its_loop(stub.__aexit__())
    finally:
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join)
        loop.close()


async def test_an_async_callable_conforms() -> None:
    async def double(item: int) -> int:
        await asyncio.sleep(0)
        return 2 * item

    await check_target(lambda: double, [1, 2, 3])


async def test_a_sync_callable_in_threads_conforms() -> None:
    def double(item: int) -> int:
        time.sleep(0.001)  # a blocking call, in a worker thread
        return 2 * item

    await check_target(lambda: double, [1, 2, 3])


async def _http(request: web.Request, body: bytes) -> web.Response:
    item = json.loads(body)
    if item == "missing":
        return web.Response(status=404)
    return web.json_response({"got": item})


async def test_the_http_target_conforms() -> None:
    async with served_in_a_thread(_http) as url:
        await check_target(lambda: HttpTarget(f"{url}/score"), ["a", "b"], failing=["missing"])


async def _invoke(request: web.Request, body: bytes) -> web.StreamResponse:
    if b'"missing"' in body:
        return lambda_error(404, "ResourceNotFoundException", "Function not found: fn")
    return await lambda_ok()(request, body)


@pytest.mark.usefixtures("aws_client_path")  # on both client paths
async def test_the_lambda_target_conforms_against_the_invoke_api() -> None:
    async with served_in_a_thread(_invoke) as url:
        await check_target(
            lambda: LambdaTarget("fn", task="t", endpoint_url=url, region_name=REGION),
            ["a", "b"],
            failing=["missing"],
        )


@pytest.mark.slow
async def test_the_lambda_target_conforms_on_moto_for_a_missing_function(moto: MotoServer) -> None:
    def target() -> LambdaTarget:
        return LambdaTarget(
            f"no-such-{uuid.uuid4().hex[:6]}",
            task="t",
            invocation_type="Event",
            endpoint_url=moto.endpoint_url,
            region_name=REGION,
        )

    await check_target(target, [], failing=[1])


@pytest_asyncio.fixture
async def work_queue(sqs: Any) -> AsyncIterator[str]:
    url = (await sqs.create_queue(QueueName=f"conf-{uuid.uuid4().hex[:8]}"))["QueueUrl"]
    yield url
    await sqs.delete_queue(QueueUrl=url)


@pytest.mark.slow
async def test_the_sqs_target_conforms_on_moto(moto: MotoServer, work_queue: str) -> None:
    def target() -> SqsTarget:
        return SqsTarget(work_queue, task="t", endpoint_url=moto.endpoint_url, region_name=REGION)

    await check_target(target, [1, "two", {"three": 3}])


@pytest.mark.slow
async def test_the_sqs_target_conforms_on_moto_for_a_missing_queue(moto: MotoServer) -> None:
    missing = f"{moto.endpoint_url}/123456789012/no-such-{uuid.uuid4().hex[:6]}"
    await check_target(
        lambda: SqsTarget(missing, task="t", endpoint_url=moto.endpoint_url, region_name=REGION),
        [],
        failing=[1],
    )


# -- broken targets: each check catches its property broken ----------------------------------


class RawError(Target):
    """Lets the client's own exception out instead of translating it."""

    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        if payload == "missing":
            raise ConnectionRefusedError("the client's own error")
        return payload


class Translated(Target):
    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        if payload == "missing":
            raise NotFound("no such thing")
        return payload


class AnswersAFailure(Translated):
    """Answers an item the far end refused, as if it succeeded."""

    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        return payload


class TwoEntries(Target):
    """A batching target answering one payload with two entries."""

    batching = Batching(max_items=10)

    async def call_batch(self, payloads: Sequence[Any], *, timeout: float | None) -> Sequence[Any]:
        return [*payloads, *payloads]


class Swallows(Translated):
    """Catches the cancellation of its call and answers anyway."""

    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            return payload
        return payload


class LeavesATask(Translated):
    """Starts a helper task per call and does not stop it when the call is cancelled."""

    def __init__(self) -> None:
        self.helpers: set[asyncio.Task[None]] = set()

    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        helper = asyncio.create_task(asyncio.sleep(0.05))
        self.helpers.add(helper)
        helper.add_done_callback(self.helpers.discard)
        await asyncio.sleep(0.05)
        return payload


class OpensATask(Translated):
    """Starts a task at open and forgets it at close."""

    async def open(self, *, concurrency: int, timeout: float | None) -> None:
        self.poller = asyncio.create_task(asyncio.sleep(3600))

    async def close(self) -> None:
        pass


class OpensASocket(Translated):
    """Opens a socket at open and never closes it."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []

    async def open(self, *, concurrency: int, timeout: float | None) -> None:
        self.sockets.append(socket.socket())


class ClosesAtTheFirstClose(Translated):
    """Releases at the first close, though another fan-out still has it open."""

    def __init__(self) -> None:
        self.is_open = False

    async def open(self, *, concurrency: int, timeout: float | None) -> None:
        self.is_open = True

    async def close(self) -> None:
        self.is_open = False

    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        if not self.is_open:
            raise RuntimeError("not open")
        return payload


async def test_a_well_behaved_target_passes() -> None:
    await check_target(Translated, ["a"], failing=["missing"])


@pytest.mark.parametrize(
    ("broken", "failing", "message"),
    [
        (RawError, ["missing"], "not an aiofanout error"),
        (AnswersAFailure, ["missing"], "which must fail"),
        (TwoEntries, [], "a batch of 1 gave 2 entries"),
        (Swallows, [], "never swallow a CancelledError"),
        (LeavesATask, [], "turns left"),
        (OpensATask, [], r"close\(\) left tasks running"),
        (ClosesAtTheFirstClose, [], "closed at the first of two closes"),
    ],
)
async def test_a_broken_target_fails_its_check(
    broken: type[Target], failing: list[Any], message: str
) -> None:
    with pytest.raises(AssertionError, match=message):
        await check_target(broken, ["a"], failing=failing)
    left = asyncio.all_tasks() - {asyncio.current_task()}
    for task in left:
        task.cancel()  # what the broken target left behind
    await asyncio.gather(*left, return_exceptions=True)


async def test_a_target_whose_close_keeps_a_socket_fails_its_check() -> None:
    made: list[OpensASocket] = []

    def target() -> OpensASocket:
        made.append(OpensASocket())
        return made[-1]

    try:
        with pytest.raises(AssertionError, match=r"close\(\) left \d+ file\(s\) open"):
            await check_target(target, ["a"])
    finally:
        for each in made:
            for sock in each.sockets:
                sock.close()
