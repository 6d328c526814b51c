"""Helpers for testing code that uses aiofanout: fake Lambda contexts, SQS events, servers.

``eventually`` (and ``eventually_sync``) wait on a condition instead of a sleep.

With pytest, ``-p aiofanout.testing`` (or ``pytest_plugins`` in the root conftest) adds the
fixtures ``moto_server`` (session-wide) and ``local_aws`` (the embedded stack, per test).

Example::

    from aiofanout.testing import LambdaContext, sqs_event

    def test_worker():
        event = sqs_event([resize.envelope("a.png")])
        assert app.lambda_handler(event, LambdaContext(remaining_ms=30_000)) == {
            "batchItemFailures": []
        }
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ._public import show_public_path
from .local._aws import function_arn, queue_arn, sqs_event_record
from .local._moto import (
    FAKE_CREDENTIALS,
    MotoServer,
    fake_aws_credentials,
    free_port,
    wait_for_http,
)

if TYPE_CHECKING:
    from .local import LocalAws

__all__ = [
    "FAKE_CREDENTIALS",
    "LambdaContext",
    "MotoServer",
    "eventually",
    "eventually_sync",
    "fake_aws_credentials",
    "free_port",
    "local_aws",
    "moto_server",
    "sqs_event",
    "sqs_record",
    "wait_for_http",
]

T = TypeVar("T")


class LambdaContext:
    """A stand-in for the context object Lambda passes a handler, with a deadline that runs.

    Pass ``remaining_ms`` for a deadline that counts down from now in real time, or ``clock``,
    a function returning the remaining milliseconds, to script it.

    Example::

        app.lambda_handler(sqs_event(bodies), LambdaContext(remaining_ms=5_000))
    """

    def __init__(
        self,
        *,
        remaining_ms: int = 900_000,
        clock: Callable[[], int] | None = None,
        function_name: str = "worker",
        memory_limit_in_mb: str = "128",
    ) -> None:
        self._deadline = time.monotonic() + remaining_ms / 1000
        self._clock = clock
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn(function_name)
        self.memory_limit_in_mb = memory_limit_in_mb  # a string, as in awslambdaric
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "test"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation's deadline."""
        if self._clock is not None:
            return self._clock()
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def sqs_record(
    body: str | bytes,
    *,
    queue: str = "work",
    fifo: bool = False,
    receive_count: int = 1,
    group_id: str = "g1",
    message_id: str | None = None,
) -> dict[str, Any]:
    """One record as Lambda's SQS event source delivers it.

    Example::

        event = {"Records": [sqs_record(body, fifo=True, group_id="orders")]}
    """
    text = body.decode() if isinstance(body, bytes) else body
    name = f"{queue}.fifo" if fifo and not queue.endswith(".fifo") else queue
    attributes: dict[str, str] = {
        "ApproximateReceiveCount": str(receive_count),
        "SentTimestamp": str(int(time.time() * 1000)),
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
    }
    if fifo:
        attributes |= {
            "MessageGroupId": group_id,
            "MessageDeduplicationId": hashlib.sha256(text.encode()).hexdigest(),
            "SequenceNumber": str(time.time_ns()),
        }
    return sqs_event_record(
        message_id=message_id or str(uuid.uuid4()),
        receipt_handle="AQEB" + uuid.uuid4().hex,
        body=text,
        source_arn=queue_arn(name),
        attributes=attributes,
        md5_of_body=hashlib.md5(text.encode()).hexdigest(),
    )


def sqs_event(
    bodies: Sequence[str | bytes], *, queue: str = "work", fifo: bool = False
) -> dict[str, Any]:
    """An SQS event source batch of ``bodies``, as Lambda hands it to a handler.

    Example::

        failures = app.lambda_handler(sqs_event([task.envelope(1), b"not json"]), None)
    """
    return {"Records": [sqs_record(b, queue=queue, fifo=fifo) for b in bodies]}


@overload
async def eventually(
    condition: Callable[[], Awaitable[T]], *, timeout: float = 30.0, interval: float = 0.05
) -> T: ...


@overload
async def eventually(
    condition: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.05
) -> T: ...


async def eventually(
    condition: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.05
) -> Any:
    """Wait until ``condition()`` is truthy and return that value (a condition, not a sleep).

    ``condition`` is called every ``interval`` seconds (``0``: at every turn of the event loop);
    when it returns an awaitable (an ``async def`` function, or ``asyncio.to_thread`` for a
    blocking check such as a boto3 call against a server on this loop), that is awaited. An
    exception from it propagates at once. After ``timeout`` seconds it raises
    :class:`AssertionError` naming the condition and the last value it returned.

    Example::

        await eventually(lambda: target.reply_stats.received >= 2)
        messages = await eventually(functools.partial(asyncio.to_thread, receive, url))
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(_not_true(condition, timeout, value))
        await asyncio.sleep(interval)


def eventually_sync(
    condition: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.05
) -> T:
    """:func:`eventually` for a test without an event loop: polls ``condition`` in this thread.

    Example::

        process.send_signal(signal.SIGTERM)
        eventually_sync(lambda: not Path(f"/proc/{child}").exists(), timeout=20)
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(_not_true(condition, timeout, value))
        time.sleep(interval)


def _not_true(condition: Callable[[], object], timeout: float, last: object) -> str:
    return f"{_describe(condition)} did not come true in {timeout:g} s (last value: {last!r})"


def _describe(condition: Callable[[], object]) -> str:
    """The condition's name, or for a lambda the line of source that holds it."""
    name = getattr(condition, "__qualname__", None) or repr(condition)
    if name.endswith("<lambda>"):
        try:
            return f"the condition `{inspect.getsource(condition).strip()}`"
        except (OSError, TypeError):  # no source at hand (an interactive session)
            pass
    return f"the condition {name}"


def moto_server() -> Iterator[MotoServer]:
    """A pytest fixture: a real moto server for the session, with credentials only it accepts.

    Example::

        async def test_queue(moto_server):
            session = aioboto3.Session(region_name="us-east-1")
            async with session.client("sqs", endpoint_url=moto_server.endpoint_url) as sqs:
                await sqs.create_queue(QueueName="work")
    """
    with fake_aws_credentials(), MotoServer() as server:
        yield server


async def local_aws() -> AsyncIterator[LocalAws]:
    """A pytest fixture: the embedded stack (moto server + local Lambda runtime) for one test.

    Example::

        async def test_worker(local_aws):
            local_aws.add_function(FunctionConfig("worker", "worker.lambda_handler"))
            target = LambdaTarget("worker", endpoint_url=local_aws.lambda_endpoint_url)
    """
    from .local import stack  # needs the local extra: loaded only when a test asks for it

    async with stack() as aws:
        yield aws


def _make_fixtures() -> None:
    """Turn the two functions above into pytest fixtures, when pytest-asyncio is installed."""
    try:
        import pytest
        import pytest_asyncio
    except ImportError:  # pragma: no cover - only without the test tools
        return
    globals()["moto_server"] = pytest.fixture(scope="session")(moto_server)
    globals()["local_aws"] = pytest_asyncio.fixture(local_aws)


# Which public path an object shows: the public module whose ``__all__`` lists it, and
# ``aiofanout.local`` where both do. The server helpers come from ``aiofanout.local``'s private
# ``_moto`` but only this module exports them, so they show ``aiofanout.testing``.
show_public_path(__name__, __all__, globals())
_make_fixtures()
