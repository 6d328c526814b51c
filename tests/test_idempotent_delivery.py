"""Idempotent tasks under redelivery and re-runs, through real processes on the local stack.

SQS delivers a message again, Lambda runs an ``Event`` again after a crash, and a run that died
holds its key until its deadline. Each test runs ``idempotent_worker`` in awslambdaric
processes with its store in the moto server's DynamoDB, and counts from the worker's ledger
(one ``O_APPEND`` line per handler entry, body start, body end and answer, so a line survives
its process being killed): deliveries outnumber items, yet each task body ran once.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from aiofanout import LambdaTarget, SqsTarget, dispatch_many
from aiofanout.local import EventSourceMapping, Faults, FunctionConfig, LocalAws
from aiofanout.testing import eventually

# End to end on a local stack of real processes: every test here is slow.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

FUNCTIONS = str(Path(__file__).with_name("lambda_functions"))
APP = "idempotent-worker"  # as in lambda_functions/idempotent_worker.py
FRAGILE_TIMEOUT = 4.0  # ditto: fragile's timeout, when its in-progress record expires


@dataclass(frozen=True)
class Line:
    """One ledger line: what happened to which key, when (epoch ms), and the answer given."""

    what: str
    key: str
    ms: int
    outcome: str = ""


def parse(text: str) -> Line:
    what, key, ms, *outcome = text.split()
    return Line(what, key, int(ms), *outcome)


class Worker:
    """A fresh ``idempotent_worker`` function, its own idempotency table and its ledger."""

    def __init__(
        self,
        aws: LocalAws,
        tmp_path: Path,
        *,
        timeout: float = 30.0,
        environment: dict[str, str] | None = None,
        **config: Any,
    ) -> None:
        self.aws = aws
        self.name = f"idem-{uuid.uuid4().hex[:8]}"
        self.table = f"{self.name}-keys"
        self.ledger = tmp_path / f"{self.name}.ledger"
        variables = {
            "LEDGER_FILE": str(self.ledger),
            "IDEMPOTENCY_TABLE": self.table,
            "IDEMPOTENCY_ENDPOINT": aws.endpoint_url,
            **(environment or {}),
        }
        # A batch stops taking records 2 s (the app's deadline margin) before the function's
        # timeout: the default 3 s would leave a cold environment too little to claim a key.
        aws.add_function(
            FunctionConfig(
                self.name,
                "idempotent_worker.lambda_handler",
                timeout=timeout,
                code_paths=[FUNCTIONS],
                environment=variables,
                **config,
            )
        )

    def lines(self, what: str | None = None) -> list[Line]:
        text = self.ledger.read_text() if self.ledger.exists() else ""
        lines = [parse(line) for line in text.splitlines()]
        return [line for line in lines if what in (None, line.what)]

    def count(self, what: str) -> Counter[str]:
        return Counter(line.key for line in self.lines(what))

    def came_back_after_its_run(self, key: str) -> bool:
        """Whether ``key`` reached the handler again after its task body had finished."""
        finished = [line.ms for line in self.lines("finish") if line.key == key]
        delivered = [line.ms for line in self.lines("delivery") if line.key == key]
        return bool(finished) and max(delivered) >= min(finished)

    async def stored(self, task: str, key: str) -> dict[str, Any]:
        """The key's record in the idempotency table (``{}`` if there is none)."""
        from aiofanout.worker._idempotency import store_key

        async with self.aws.client("dynamodb") as dynamodb:
            try:
                answer = await dynamodb.get_item(
                    TableName=self.table,
                    Key={"pk": {"S": store_key(APP, task, "key function", key)}},
                    ConsistentRead=True,
                )
            except dynamodb.exceptions.ResourceNotFoundException:
                return {}  # no run ever claimed a key: the store made no table
        item: dict[str, Any] = answer.get("Item", {})
        return item


@pytest_asyncio.fixture(loop_scope="module")
async def sqs_queue(aws: LocalAws) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Make a queue that feeds a worker; its mappings stop polling after the test."""
    mappings: list[str] = []

    async def make(worker: Worker, *, batch_size: int, pollers: int) -> str:
        # A 1 s visibility timeout: a record reported failed, or lost with its process, is
        # back soon.
        url = await aws.create_queue(f"idem-{uuid.uuid4().hex[:8]}", VisibilityTimeout="1")
        mapping = EventSourceMapping(url, worker.name, batch_size=batch_size, pollers=pollers)
        mappings.append(await aws.add_event_source(mapping))
        return url

    yield make
    async with aws.client("lambda") as lambda_api:
        for mapping_id in mappings:
            await lambda_api.delete_event_source_mapping(UUID=mapping_id)


async def queue_is_empty(aws: LocalAws, url: str) -> bool:
    async with aws.client("sqs") as sqs:
        got = await sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
    return all(v == "0" for v in got["Attributes"].values())


def sqs_target(aws: LocalAws, url: str, task: str) -> SqsTarget:
    return SqsTarget(url, task=task, endpoint_url=aws.endpoint_url, region_name="us-east-1")


def stored_reply(record: dict[str, Any]) -> Any:
    assert record.get("status") == {"S": "COMPLETED"}, record
    return json.loads(record["reply"]["S"])["value"]


# -- the scenarios -------------------------------------------------------------------------------


async def test_every_sqs_message_delivered_twice_runs_its_task_once(
    aws: LocalAws, tmp_path: Path, sqs_queue: Callable[..., Awaitable[str]]
) -> None:
    worker = Worker(aws, tmp_path, environment={"FAIL_FIRST_RECEIVE": "1"})
    # One poller: a message comes back only once the delivery before it has answered, even if
    # a cold start outlasts the visibility timeout (two pollers could hold it at once).
    url = await sqs_queue(worker, batch_size=10, pollers=1)
    keys = [f"sqs-{n}" for n in range(20)]
    assert (await dispatch_many(sqs_target(aws, url, "work"), keys, concurrency=10)).ok
    await eventually(lambda: queue_is_empty(aws, url))  # every message deleted

    deliveries = worker.count("delivery")
    assert set(deliveries) == set(keys)
    assert all(deliveries[key] >= 2 for key in keys), deliveries  # each message came back
    assert deliveries.total() > len(keys)
    assert all(worker.came_back_after_its_run(key) for key in keys)  # and found its reply
    assert worker.count("start") == worker.count("finish") == Counter(keys)  # each ran once
    for key in keys:
        assert stored_reply(await worker.stored("work", key)) == {"key": key, "shout": key.upper()}


async def test_events_re_run_after_crashes_run_their_task_once(
    aws: LocalAws, tmp_path: Path
) -> None:
    # Every try's environment is killed after the handler answered: Lambda runs each event
    # again, twice, and each try finds the reply the first one stored.
    worker = Worker(
        aws,
        tmp_path,
        faults=Faults(crash=1.0, crash_at="after"),
        event_retries=2,
        event_retry_delays=(0.05, 0.05),
    )
    target = LambdaTarget(
        worker.name,
        task="work",
        invocation_type="Event",
        endpoint_url=aws.lambda_endpoint_url,
        region_name="us-east-1",
    )
    keys = [f"event-{n}" for n in range(8)]
    assert (await dispatch_many(target, keys, concurrency=8)).ok
    tries = 3 * len(keys)
    await eventually(lambda: len(worker.lines("answer")) == tries, timeout=40)  # the tries' answers

    assert worker.count("delivery") == Counter(dict.fromkeys(keys, 3))  # each event re-run
    assert all(worker.came_back_after_its_run(key) for key in keys)
    assert worker.count("start") == worker.count("finish") == Counter(keys)  # each ran once
    for key in keys:
        assert stored_reply(await worker.stored("work", key)) == {"key": key, "shout": key.upper()}


async def test_a_run_that_died_holds_its_key_until_its_deadline_then_runs_once_more(
    aws: LocalAws, tmp_path: Path, sqs_queue: Callable[..., Awaitable[str]]
) -> None:
    worker = Worker(aws, tmp_path)
    url = await sqs_queue(worker, batch_size=1, pollers=1)
    key = f"fragile-{uuid.uuid4().hex[:8]}"
    assert (await dispatch_many(sqs_target(aws, url, "fragile"), [key], concurrency=1)).ok

    # The first run claimed the key, started and died: its record stays IN_PROGRESS.
    await eventually(lambda: worker.count("start")[key] == 1)  # the first run's start
    [first] = worker.lines("start")
    claim = await worker.stored("fragile", key)
    assert claim.get("status") == {"S": "IN_PROGRESS"}, claim
    expires_at_ms = int(claim["expires_at_ms"]["N"])
    # It expires at the task's deadline: its timeout after the claim, just before the start.
    assert 0 < expires_at_ms - first.ms <= FRAGILE_TIMEOUT * 1000

    await eventually(lambda: worker.count("finish")[key] == 1)  # the run after the deadline
    await eventually(lambda: queue_is_empty(aws, url))  # the message deleted
    starts, answers = worker.lines("start"), worker.lines("answer")
    assert len(starts) == 2  # the run that died and the run after its deadline, nothing else
    assert len(worker.lines("finish")) == 1
    second = starts[1]
    refused = [a for a in answers if a.outcome == "retry" and first.ms < a.ms < second.ms]
    # Deliveries came while the dead run held the key and were refused (InProgress)...
    assert any(a.ms < expires_at_ms for a in refused), answers
    assert second.ms >= expires_at_ms  # ...and only after its deadline did the task run again
    assert [a.outcome for a in answers if a.ms >= second.ms] == ["done"]
    assert stored_reply(await worker.stored("fragile", key)) == {"key": key, "shout": key.upper()}


# -- a claim ends with the invocation that holds it ------------------------------------------


async def test_a_run_cut_off_by_its_invocations_deadline_frees_its_key_by_that_deadline(
    aws: LocalAws, tmp_path: Path, sqs_queue: Callable[..., Awaitable[str]]
) -> None:
    timeout = 4.0  # the function's: the batch stops the task 2 s (the margin) before it
    worker = Worker(aws, tmp_path, timeout=timeout)
    url = await sqs_queue(worker, batch_size=1, pollers=1)
    key = f"endless-{uuid.uuid4().hex[:8]}"
    assert (await dispatch_many(sqs_target(aws, url, "endless"), [key], concurrency=1)).ok
    await eventually(lambda: worker.count("answer")[key] >= 1)  # the first delivery's answer
    first = worker.lines("delivery")[0]
    assert [line.key for line in worker.lines("start")] == [key]  # it ran, then was cut off
    claim = await worker.stored("endless", key)
    assert claim.get("status") == {"S": "IN_PROGRESS"}, claim
    # That run cannot outlive its invocation, so its claim need not outlive it either; held
    # longer, every redelivery meanwhile is refused (InProgress) and uses up a receive.
    assert int(claim["expires_at_ms"]["N"]) <= first.ms + timeout * 1000
