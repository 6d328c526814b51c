"""Helpers for testing code that uses aiofanout: fake Lambda contexts, SQS events, servers.

``eventually`` (and ``eventually_sync``) wait on a condition instead of a sleep, and
``check_target`` runs a target of your own through the properties every target must have.

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
import contextlib
import gc
import hashlib
import inspect
import os
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ._errors import FanoutError
from ._public import show_public_path
from ._target import Target, as_target
from .local._account import function_arn, queue_arn, sqs_event_record
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
    "check_target",
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


async def check_target(
    make_target: Callable[[], object],
    items: Sequence[Any],
    *,
    failing: Sequence[Any] = (),
    timeout: float = 10.0,
) -> None:
    """Run a target through what every target must do; raise :class:`AssertionError` if it does not.

    ``make_target`` builds a fresh target (a :class:`~aiofanout.targets.Target`, or anything
    :func:`~aiofanout.dispatch_many` takes as one); ``items`` are items its far end answers, and
    ``failing`` items it refuses (at least one item in all). The checks, each on a new target:

    - one call in, one reply out: every item of ``items`` gives a value (one per payload for a
      batching target), and every item of ``failing`` an error from the :mod:`aiofanout` tree,
      never a raw exception of the client underneath;
    - a cancelled call leaves nothing behind: the call is cancelled at ever later points while
      it is in flight, ends cancelled (the :class:`asyncio.CancelledError` is not swallowed) and
      leaves no task in :func:`asyncio.all_tasks`;
    - open and close are balanced: two opens and one close leave it usable, the last close
      releases every task and file descriptor it took and closes what it opened (no
      :class:`ResourceWarning`), and it opens again after that.

    Example::

        async def test_my_target_conforms(server):
            await check_target(lambda: MyTarget(server.url), ["a", "b"], failing=["missing"])
    """
    assert items or failing, "check_target needs at least one item (in items or failing)"
    probe = [*items, *failing][0]
    await _check_one_reply_per_call(as_target(make_target(), threads=None), items, failing, timeout)
    await _check_cancellation(as_target(make_target(), threads=None), probe, timeout)
    await _check_open_close(as_target(make_target(), threads=None), probe, timeout)


async def _check_one_reply_per_call(
    target: Target, items: Sequence[Any], failing: Sequence[Any], timeout: float
) -> None:
    await target.open(concurrency=1, timeout=timeout)
    try:
        for item in items:
            try:
                await _call(target, item, timeout)
            except Exception as exc:
                raise AssertionError(f"{target!r} failed item {item!r}: {exc!r}") from exc
        for item in failing:
            try:
                value = await _call(target, item, timeout)
            except FanoutError:
                continue
            except Exception as exc:
                raise AssertionError(
                    f"{target!r} raised {exc!r} for {item!r}, not an aiofanout error: translate "
                    "the client's errors at the boundary (`raise NotFound(...) from exc`)"
                ) from exc
            raise AssertionError(f"{target!r} answered {value!r} for {item!r}, which must fail")
    finally:
        await target.close()


async def _settle(target: Target, item: Any, timeout: float) -> None:
    """One call that must end in a reply or an error from the aiofanout tree."""
    try:
        await _call(target, item, timeout)
    except FanoutError:
        pass
    except Exception as exc:
        raise AssertionError(f"{target!r} raised {exc!r} for {item!r}") from exc


async def _call(target: Target, item: Any, timeout: float) -> Any:
    """One call (a batch of one for a batching target); a batch entry that failed is raised."""
    payload = target.prepare(item)
    if target.batching is None:
        return await target.call(payload, timeout=timeout)
    entries = await target.call_batch([payload], timeout=timeout)
    assert len(entries) == 1, f"{target!r}: a batch of 1 gave {len(entries)} entries: {entries!r}"
    [entry] = entries
    if isinstance(entry, BaseException):
        raise entry
    return entry


# Cancel after so many turns of the event loop: early ones hit the first awaits, later ones a
# call waiting on its I/O. The check stops at the first point the call finishes before.
_CANCEL_POINTS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584)


async def _check_cancellation(target: Target, item: Any, timeout: float) -> None:
    await target.open(concurrency=1, timeout=timeout)
    try:
        for turns in _CANCEL_POINTS:
            before = asyncio.all_tasks()
            call = asyncio.create_task(_settle(target, item, timeout))
            for _ in range(turns):
                await asyncio.sleep(0)
            if call.done():
                await call  # it finished before this point: every earlier one was checked
                return
            call.cancel()
            await asyncio.wait({call})
            assert call.cancelled(), (
                f"{target!r}: a call cancelled after {turns} loop turns ended with "
                f"{call.exception() or call.result()!r}: never swallow a CancelledError"
            )
            left = asyncio.all_tasks() - before
            assert not left, f"{target!r}: a call cancelled after {turns} turns left {left}"
    finally:
        await target.close()


async def _check_open_close(target: Target, item: Any, timeout: float) -> None:
    tasks, fds = asyncio.all_tasks(), _open_fds()
    with _unclosed_resources(target):  # a resource dropped unclosed warns when it is collected
        await target.open(concurrency=1, timeout=timeout)
        await target.open(concurrency=1, timeout=timeout)
        await target.close()
        try:
            await _settle(target, item, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{target!r} closed at the first of two closes: {exc}") from exc
        await target.close()
        gc.collect()
    left = asyncio.all_tasks() - tasks
    assert not left, f"{target!r}.close() left tasks running: {left}"
    if fds is not None:
        # A closed socket is let go at a later turn of the loop: wait for it, a little.
        try:
            await eventually(lambda: (_open_fds() or 0) <= fds, timeout=1, interval=0.01)
        except AssertionError:
            left_open = (_open_fds() or 0) - fds
            raise AssertionError(f"{target!r}.close() left {left_open} file(s) open") from None
    await target.open(concurrency=1, timeout=timeout)
    try:
        await _settle(target, item, timeout)
    finally:
        await target.close()


@contextlib.contextmanager
def _unclosed_resources(target: Target) -> Iterator[None]:
    """Fail if a :class:`ResourceWarning` (a session or socket never closed) is raised inside."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield
    unclosed = [w for w in caught if issubclass(w.category, ResourceWarning)]
    for other in caught:
        if other not in unclosed:  # not ours to swallow: warn again
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    assert not unclosed, f"{target!r}.close() left unclosed: {unclosed[0].message}"


def _open_fds() -> int | None:
    """How many file descriptors this process has open (``None`` where it cannot be told)."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(folder):
            return len(os.listdir(folder))
    return None


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
