"""The moto server behind ``python -m aiofanout.local._moto._exact_sqs`` loses no SQS message.

Real server processes on loopback ports and real aioboto3 clients. Clients never retry here
(``total_max_attempts`` 1), so an HTTP 500 from the server shows up instead of being hidden.
A plain ``python -m moto.server`` runs the same redrive scenario for comparison: it must fail it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aioboto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from aiofanout.testing import MotoServer

#: No retries: a retried 500 would hide the server's error, and a retried receive a lost one.
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"}, max_pool_connections=20)
MESSAGES = 300
MAX_RECEIVES = 2


@pytest.fixture(scope="module")
def exact() -> Iterator[MotoServer]:
    with MotoServer() as server:  # what aiofanout.testing and the local stack start
        yield server


@pytest.fixture(scope="module")
def plain() -> Iterator[MotoServer]:
    with MotoServer(exact_sqs=False) as server:
        yield server


async def _client(server: MotoServer) -> Any:
    session = aioboto3.Session(region_name="us-east-1")
    return session.client("sqs", endpoint_url=server.endpoint_url, config=NO_RETRIES)


async def _queue(sqs: Any, **attributes: str) -> str:
    url: str = (
        await sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:12]}", Attributes=attributes)
    )["QueueUrl"]
    return url


async def _send_all(sqs: Any, url: str, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        entries = [
            {"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])
        ]
        response = await sqs.send_message_batch(QueueUrl=url, Entries=entries)
        assert not response.get("Failed")


async def _depth(sqs: Any, url: str) -> int:
    """Messages in ``url``: visible, in flight and delayed."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names))["Attributes"]
    return sum(int(attributes[name]) for name in names)


def _is_server_error(exc: ClientError) -> bool:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) >= 500


@dataclass
class RedriveRun:
    """What the consumers of a redriving queue saw, and what ended in its DLQ."""

    receives: Counter[str] = field(default_factory=Counter)
    #: ApproximateReceiveCount on each receive: a gap is a receive no consumer saw.
    counts: dict[str, list[int]] = field(default_factory=dict)
    dead: Counter[str] = field(default_factory=Counter)
    server_errors: int = 0

    def anomalies(self, bodies: list[str]) -> dict[str, int]:
        """Each way a message went wrong, and how many messages it happened to."""
        return {
            "never received": sum(1 for b in bodies if self.receives[b] == 0),
            "received more than twice": sum(1 for b in bodies if self.receives[b] > MAX_RECEIVES),
            "dead-lettered early": sum(
                1 for b in bodies if self.dead[b] and self.receives[b] < MAX_RECEIVES
            ),
            "not in the DLQ exactly once": sum(1 for b in bodies if self.dead[b] != 1),
            "receive counts skipped": sum(
                1 for b in bodies if self.counts.get(b, []) != list(range(1, MAX_RECEIVES + 1))
            ),
            "server errors": self.server_errors,
        }


async def _consume(sqs: Any, url: str, run: RedriveRun) -> None:
    """Receive (never delete) until the queue is empty: every message ends in the DLQ."""
    while True:
        try:
            response = await sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        except ClientError as exc:
            if not _is_server_error(exc):
                raise
            run.server_errors += 1
            continue
        messages = response.get("Messages", [])
        for message in messages:
            run.receives[message["Body"]] += 1
            count = int(message["Attributes"]["ApproximateReceiveCount"])
            run.counts.setdefault(message["Body"], []).append(count)
        if not messages and await _depth(sqs, url) == 0:
            return


async def _drain(sqs: Any, url: str) -> Counter[str]:
    """Every body in ``url``, received once each (one reader, a long visibility timeout)."""
    bodies: Counter[str] = Counter()
    while True:
        response = await sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300
        )
        messages = response.get("Messages", [])
        if not messages:
            return bodies
        bodies.update(message["Body"] for message in messages)


async def redrive(server: MotoServer, consumers: int, messages: int = MESSAGES) -> dict[str, int]:
    """The issue's reproduction: ``consumers`` receive messages until all are dead-lettered.

    A 1 s visibility timeout and ``maxReceiveCount`` 2, nothing deleted: each message must be
    received exactly twice (receive counts 1 then 2), then moved to the DLQ exactly once.
    """
    bodies = [f"m{i:03}" for i in range(messages)]
    run = RedriveRun()
    async with await _client(server) as sqs:
        dlq = await _queue(sqs)
        dlq_arn = (await sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"]))[
            "Attributes"
        ]["QueueArn"]
        policy = f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": "{MAX_RECEIVES}"}}'
        url = await _queue(sqs, VisibilityTimeout="1", RedrivePolicy=policy)
        await _send_all(sqs, url, bodies)
        async with asyncio.timeout(40):
            await asyncio.gather(*(_consume(sqs, url, run) for _ in range(consumers)))
        run.dead = await _drain(sqs, dlq)
        await sqs.delete_queue(QueueUrl=url)
        await sqs.delete_queue(QueueUrl=dlq)
    return run.anomalies(bodies)


@pytest.mark.parametrize("consumers", [1, 2, 4])
@pytest.mark.slow
async def test_every_message_is_received_twice_then_dead_lettered_once(
    exact: MotoServer, consumers: int
) -> None:
    anomalies = await redrive(exact, consumers)
    assert anomalies == dict.fromkeys(anomalies, 0)


@pytest.mark.slow
async def test_comparison_a_plain_moto_server_fails_the_same_redrive(plain: MotoServer) -> None:
    """Not a test of ours: it shows the redrive test above has teeth (moto 5.2.5).

    The plain server's races are probabilistic, but with 2 consumers and 300 messages every
    measured run (8 of 8) had 16-24 HTTP 500s and 126-200 messages dead-lettered early.
    """
    anomalies = await redrive(plain, consumers=2)
    assert anomalies["server errors"] > 0, anomalies
    assert anomalies["receive counts skipped"] > 0, anomalies


@dataclass
class Traffic:
    """Bodies received, and the messages waiting for a deleter (``None`` stops one)."""

    received: Counter[str] = field(default_factory=Counter)
    to_delete: asyncio.Queue[list[dict[str, Any]] | None] = field(default_factory=asyncio.Queue)


async def _send(sqs: Any, url: str, bodies: list[str], *, batched: bool) -> None:
    if batched:
        await _send_all(sqs, url, bodies)
        return
    for body in bodies:
        await sqs.send_message(QueueUrl=url, MessageBody=body)


async def _receive(sqs: Any, url: str, traffic: Traffic, total: int) -> None:
    deadline = asyncio.get_running_loop().time() + 25
    while len(traffic.received) < total and asyncio.get_running_loop().time() < deadline:
        response = await sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        messages = response.get("Messages", [])
        traffic.received.update(message["Body"] for message in messages)
        if messages:
            await traffic.to_delete.put(messages)


async def _delete(sqs: Any, url: str, traffic: Traffic, *, batched: bool) -> None:
    while (messages := await traffic.to_delete.get()) is not None:
        if batched:
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ]
            response = await sqs.delete_message_batch(QueueUrl=url, Entries=entries)
            assert not response.get("Failed"), response["Failed"]
        else:
            for message in messages:
                await sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


@pytest.mark.slow
async def test_concurrent_senders_receivers_and_deleters_lose_and_repeat_nothing(
    exact: MotoServer,
) -> None:
    """Deletes rebuild moto's message list: racing sends must not vanish, deletes not undo."""
    batches = [[f"s{s}-{i:03}" for i in range(75)] for s in range(4)]
    total = sum(len(batch) for batch in batches)
    traffic = Traffic()
    async with await _client(exact) as sqs:
        # 2 s: a message brought back by a lost delete would be received again during the run.
        url = await _queue(sqs, VisibilityTimeout="2")
        async with asyncio.TaskGroup() as group:
            deleters = [_delete(sqs, url, traffic, batched=i % 2 == 0) for i in range(3)]
            for deleter in deleters:
                group.create_task(deleter)
            await asyncio.gather(
                *(_send(sqs, url, b, batched=i % 2 == 0) for i, b in enumerate(batches)),
                *(_receive(sqs, url, traffic, total) for _ in range(3)),
            )
            for _ in deleters:
                await traffic.to_delete.put(None)
        depth = await _depth(sqs, url)
        await sqs.delete_queue(QueueUrl=url)
    expected = [body for batch in batches for body in batch]
    assert sorted(traffic.received.elements()) == sorted(expected)  # each exactly once
    assert depth == 0  # nothing deleted came back, even in flight


@pytest.mark.slow
async def test_a_long_poll_does_not_hold_up_other_queues(exact: MotoServer) -> None:
    """The lock is let go while a receive waits; the waiting receive still gets a new message."""
    async with await _client(exact) as sqs:
        idle, busy = await _queue(sqs), await _queue(sqs)
        poll = asyncio.create_task(
            sqs.receive_message(QueueUrl=idle, WaitTimeSeconds=5, MaxNumberOfMessages=1)
        )
        try:
            bodies = [f"b{i:02}" for i in range(50)]
            for body in bodies:
                await sqs.send_message(QueueUrl=busy, MessageBody=body)
            traffic = Traffic()
            await _receive(sqs, busy, traffic, len(bodies))
            # Had the poll kept the lock, the 100 calls above could not have run before it ended.
            assert not poll.done()
            assert sorted(traffic.received) == bodies
            await sqs.send_message(QueueUrl=idle, MessageBody="wake")
            response = await poll
        finally:
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poll
        assert [m["Body"] for m in response["Messages"]] == ["wake"]
        await sqs.delete_queue(QueueUrl=idle)
        await sqs.delete_queue(QueueUrl=busy)


@pytest.mark.slow
async def test_a_long_poll_on_a_blocked_fifo_group_does_not_hold_up_others(
    exact: MotoServer,
) -> None:
    """Messages the receive cannot take (their FIFO group has one in flight) are no reason to
    keep the lock: the poll waits without it."""
    async with await _client(exact) as sqs:
        name = f"fifo-{uuid.uuid4().hex[:8]}.fifo"
        attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
        fifo = (await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]
        other = await _queue(sqs)
        for body in ("first", "second"):
            await sqs.send_message(QueueUrl=fifo, MessageBody=body, MessageGroupId="g")
        taken = await sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=1)
        assert [m["Body"] for m in taken["Messages"]] == ["first"]  # "second" waits behind it
        poll = asyncio.create_task(
            sqs.receive_message(QueueUrl=fifo, WaitTimeSeconds=4, MaxNumberOfMessages=1)
        )
        try:
            for i in range(20):
                await sqs.send_message(QueueUrl=other, MessageBody=f"o{i}")
            # Had the poll spun holding the lock, these sends could not have run before it ended.
            assert not poll.done()
        finally:
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poll
        await sqs.delete_queue(QueueUrl=fifo)
        await sqs.delete_queue(QueueUrl=other)
