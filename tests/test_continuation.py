"""Continuation past one Lambda invocation, through real processes on the local stack.

An orchestrator function with a 10 s timeout fans numbers out to a worker function through
:func:`aiofanout.durable.orchestrate`, with its journal in moto's S3. The worker appends each
execution to a file (one ``O_APPEND`` write), a side channel that survives any crash.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from aiofanout import FileJournal, Retry, S3Journal, Throttled
from aiofanout.durable import orchestrate, resume_event
from aiofanout.local import Faults, FunctionConfig, LocalAws
from aiofanout.targets import Batching, Target
from aiofanout.testing import eventually

# End to end on a local stack of real processes: every test here is slow.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

FUNCTIONS = str(Path(__file__).with_name("lambda_functions"))


class Orchestration:
    """A fresh worker, orchestrator, bucket and summary queue; the worker's executions."""

    def __init__(
        self,
        aws: LocalAws,
        tmp_path: Path,
        items: int,
        item_seconds: float,
        *,
        distinct: int | None = None,
        idempotent: bool = False,
        orchestrator_timeout: int = 10,
        attempt_timeout: float = 3.0,
    ) -> None:
        self.aws = aws
        self.orchestrator_timeout = orchestrator_timeout
        self.attempt_timeout = attempt_timeout
        self.distinct = distinct
        self.idempotent = idempotent
        self.id = uuid.uuid4().hex[:8]
        self.items = items
        self.bucket = f"runs-{self.id}"
        self.executions = tmp_path / "executions.log"
        self.worker = f"worker-{self.id}"
        self.orchestrator = f"orchestrator-{self.id}"
        self.item_seconds = item_seconds
        self.summary_queue = ""
        self.failure_queue = ""

    async def create(self) -> None:
        async with self.aws.client("s3") as s3:
            await s3.create_bucket(Bucket=self.bucket)
        self.summary_queue = await self.aws.create_queue(f"summary-{self.id}")
        self.failure_queue = await self.aws.create_queue(f"failed-{self.id}")
        environment = {
            "EXECUTIONS_FILE": str(self.executions),
            "ITEM_SECONDS": str(self.item_seconds),
        }
        if self.idempotent:
            environment["IDEMPOTENCY_TABLE"] = f"keys-{self.id}"
            environment["IDEMPOTENCY_ENDPOINT"] = self.aws.endpoint_url
        handler = "idempotent_worker_handler" if self.idempotent else "worker_handler"
        self.aws.add_function(
            FunctionConfig(
                self.worker,
                f"orchestration.{handler}",
                code_paths=[FUNCTIONS],
                timeout=10,
                reserved_concurrency=4,
                environment=environment,
            )
        )
        self.add_orchestrator(Faults())

    def add_orchestrator(self, faults: Faults) -> None:
        self.aws.add_function(
            FunctionConfig(
                self.orchestrator,
                "orchestration.orchestrator_handler",
                code_paths=[FUNCTIONS],
                timeout=self.orchestrator_timeout,
                reserved_concurrency=2,
                faults=faults,
                event_retries=0,
                on_failure=self.failure_queue,
                environment={
                    "RUNS_BUCKET": self.bucket,
                    "WORKER": self.worker,
                    "ITEMS": str(self.items),
                    "ATTEMPT_TIMEOUT": str(self.attempt_timeout),
                    "SUMMARY_QUEUE": self.summary_queue,
                    **({"DISTINCT": str(self.distinct)} if self.distinct else {}),
                    **({"WORKER_IS_IDEMPOTENT": "1"} if self.idempotent else {}),
                },
            )
        )

    async def start(self, event: dict[str, Any]) -> None:
        async with self.aws.client("lambda") as client:
            response = await client.invoke(
                FunctionName=self.orchestrator,
                InvocationType="Event",
                Payload=json.dumps(event).encode(),
            )
        assert response["StatusCode"] == 202

    async def next_message(self, queue_url: str, bound: float = 150.0) -> dict[str, Any]:
        """The next message on ``queue_url`` (long polls, at most ``bound`` seconds)."""
        async with self.aws.client("sqs") as sqs:

            async def received() -> dict[str, Any] | None:
                got = await sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=2)
                for message in got.get("Messages", []):
                    await sqs.delete_message(
                        QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"]
                    )
                    return dict(message)
                return None

            message = await eventually(received, timeout=bound, interval=0)
        return dict(json.loads(message["Body"]))

    def executed(self) -> Counter[int]:
        text = self.executions.read_text() if self.executions.exists() else ""
        return Counter(int(line) for line in text.split())

    def journal(self) -> S3Journal:
        return S3Journal(self.bucket, prefix="runs/", endpoint_url=self.aws.endpoint_url)


async def test_twenty_thousand_items_continue_across_invocations_each_run_exactly_once(
    aws: LocalAws, tmp_path: Path
) -> None:
    run = Orchestration(aws, tmp_path, items=20_000, item_seconds=0.05)
    await run.create()
    await run.start({"run_id": "twenty-thousand"})

    summary = await run.next_message(run.summary_queue)
    assert summary["state"] == "finished"
    assert summary["run_id"] == "twenty-thousand"
    assert summary["invocation"] >= 3  # it did not fit in one 10 s invocation, nor in two
    assert summary["counts"] == {"succeeded": 20_000}

    executed = run.executed()
    assert set(executed) == set(range(20_000))
    assert max(executed.values()) == 1  # every item exactly once, across the invocations

    journal = run.journal()
    manifest = await journal.manifest("twenty-thousand")
    assert manifest is not None
    assert manifest["counts"] == {"succeeded": 20_000}
    values = {o.index: o.value async for o in journal.results("twenty-thousand")}
    assert values == {n: 2 * n for n in range(20_000)}


async def test_a_crashed_orchestrator_is_resumed_and_what_succeeded_does_not_run_again(
    aws: LocalAws, tmp_path: Path
) -> None:
    run = Orchestration(aws, tmp_path, items=8_000, item_seconds=0.05)
    await run.create()
    # Seed 109 kills the first invocation's environment 4.7 s in: in the middle of taking items
    # (it stops taking them at 5 s), late enough that the workers' cold starts are over even on
    # a loaded machine, so some items succeeded before the crash.
    run.add_orchestrator(Faults(crash=1.0, crash_at="during", seed=109))
    await run.start({"run_id": "crashy"})

    failed = await run.next_message(run.failure_queue)  # the crash, on the on-failure queue
    assert failed["responseContext"]["functionError"] == "Unhandled"
    journal = run.journal()
    succeeded_before = set(await journal.final_records("crashy", succeeded_only=True))
    assert 0 < len(succeeded_before) < 8_000
    assert await journal.manifest("crashy") is None

    run.add_orchestrator(Faults())  # the same function, healthy again
    await run.start(resume_event("crashy"))
    summary = await run.next_message(run.summary_queue)
    assert summary["state"] == "finished"
    assert summary["counts"] == {"succeeded": 8_000}

    executed = run.executed()
    assert set(executed) == set(range(8_000))  # everything else ended
    assert all(executed[n] == 1 for n in succeeded_before)  # what succeeded did not run again


async def test_with_an_idempotent_worker_a_crash_and_resume_run_every_item_exactly_once(
    aws: LocalAws, tmp_path: Path
) -> None:
    # 1,000 items over 100 values: equal arguments, other items. The worker's task is idempotent
    # with no key function, so its key is the one the run sends, "<run id>:<index>". A hash of
    # the arguments would run each value once; no key would run again what the crash left
    # done but not journaled. Each item costs the worker two DynamoDB writes on the moto server,
    # which a loaded machine slows: its chunks get 8 s, its invocations 20 s (1.5 s of which, the
    # reserve, hand over to the next).
    run = Orchestration(
        aws, tmp_path, items=1_000, item_seconds=0.05, distinct=100, idempotent=True,
        orchestrator_timeout=20, attempt_timeout=8.0,
    )  # fmt: skip
    await run.create()
    run.add_orchestrator(Faults(crash=1.0, crash_at="during", seed=29))
    await run.start({"run_id": "crashy-once"})

    await run.next_message(run.failure_queue)  # the crash
    # Mid-run as a rule; on a loaded machine the workers' cold starts can outlast the 7.6 s
    # before it, and then no item has run yet. Exactly once after the resume holds either way.
    journal = run.journal()
    assert len(await journal.final_records("crashy-once")) < 1_000

    run.add_orchestrator(Faults())
    await run.start(resume_event("crashy-once"))
    summary = await run.next_message(run.summary_queue)
    assert summary["state"] == "finished"
    assert summary["counts"] == {"succeeded": 1_000}

    # Every item ran once: each of the 100 values as often as it occurs, 10 times.
    assert run.executed() == Counter(dict.fromkeys(range(100), 10))
    values = {o.index: o.value async for o in journal.results("crashy-once")}
    assert values == {n: 2 * (n % 100) for n in range(1_000)}


# -- claims and the budget, in one process (a directory journal, the real engine) ------------


class LambdaContext:
    """What ``orchestrate`` reads of a Lambda context: the request id and the time left."""

    def __init__(self, request_id: str, seconds: float) -> None:
        self.aws_request_id = request_id
        self.function_name = "orchestrator"
        self.invoked_function_arn = None
        self._ends = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self._ends - time.monotonic()) * 1000)


@pytest.fixture
def no_aws_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    # A self-invoke the test does not expect must fail here, never reach AWS.
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9")


async def test_a_duplicated_continuation_stops_at_its_claim_and_a_retry_goes_on(
    tmp_path: Path, no_aws_lambda: None
) -> None:
    journal = FileJournal(tmp_path)
    await journal.ensure_run("dup")
    assert await journal.storage.put_new("dup/claims/00002.json", b'{"request_id": "A"}')
    ran: Counter[int] = Counter()

    async def work(n: int) -> int:
        ran[n] += 1
        return n

    event = {"aiofanout.continue": {"run_id": "dup", "invocation": 2}}
    other = await orchestrate(
        work, range(10), event=event, context=LambdaContext("B", 10), journal=journal,
        concurrency=2,
    )  # fmt: skip
    assert other["state"] == "duplicate"
    assert not ran
    retry = await orchestrate(
        work, range(10), event=event, context=LambdaContext("A", 10), journal=journal,
        concurrency=2,
    )  # fmt: skip
    assert retry["state"] == "finished"
    assert retry["counts"] == {"succeeded": 10}
    assert ran == Counter(range(10))


async def test_the_invocation_budget_stops_the_chain_and_resume_event_finishes_the_run(
    tmp_path: Path, no_aws_lambda: None
) -> None:
    journal = FileJournal(tmp_path)
    ran: Counter[int] = Counter()

    async def slow(n: int) -> int:
        ran[n] += 1
        await asyncio.sleep(0.05)
        return n

    first = await orchestrate(
        slow, range(200), event={}, context=LambdaContext("R1", 4), journal=journal,
        concurrency=2, margin=2.0, max_invocations=1, run_id="budget",
    )  # fmt: skip
    assert first["state"] == "budget_exhausted"  # and no self-invoke (it would fail here)
    assert 0 < sum(first["counts"].values()) < 200
    assert await journal.manifest("budget") is None

    second = await orchestrate(
        slow, range(200), event=resume_event("budget"), context=LambdaContext("R2", 12),
        journal=journal, concurrency=2, margin=2.0, max_invocations=1,
    )  # fmt: skip
    assert second["state"] == "finished"
    assert second["invocation"] == 2
    assert second["counts"] == {"succeeded": 200}
    assert ran == Counter(range(200))  # each item once, across the two invocations


class Chunks(Target):
    """``work`` behind a target that takes items four at a time (as ``chunk_size=4`` does)."""

    batching = Batching(max_items=4)

    def __init__(self, work: Callable[[int], Awaitable[int]]) -> None:
        self.work = work

    async def call_batch(self, payloads: Sequence[Any], *, timeout: float | None) -> list[Any]:
        replies: list[Any] = []
        for n in payloads:
            try:
                replies.append(await self.work(n))
            except Throttled as exc:
                replies.append(exc)
        return replies


@pytest.mark.parametrize("chunked", [False, True], ids=["one-by-one", "in-chunks"])
async def test_a_retry_the_invocations_end_refuses_is_made_by_the_next_invocation(
    tmp_path: Path, no_aws_lambda: None, chunked: bool
) -> None:
    # Item 3's first attempt is throttled "for 30 s": a retry past this invocation's end. The
    # invocation's end is not the run's, so the item is not journaled as failed but left to the
    # next invocation (here a resume), which runs it.
    journal = FileJournal(tmp_path)
    ran: Counter[int] = Counter()

    async def work(n: int) -> int:
        ran[n] += 1
        if n == 3 and ran[n] == 1:
            raise Throttled("slow down", retry_after=30.0)
        return n

    target: Any = Chunks(work) if chunked else work
    options: dict[str, Any] = {"concurrency": 2, "margin": 2.0, "max_invocations": 1}
    first = await orchestrate(
        target, range(8), event={}, context=LambdaContext("R1", 6), journal=journal,
        retry=Retry(attempts=3), run_id="refused", **options,
    )  # fmt: skip
    assert first["state"] == "budget_exhausted"  # item 3 is still to do
    assert 3 not in await journal.final_records("refused")

    second = await orchestrate(
        target, range(8), event=resume_event("refused"), context=LambdaContext("R2", 6),
        journal=journal, retry=Retry(attempts=3), **options,
    )  # fmt: skip
    assert second["state"] == "finished"
    assert second["counts"] == {"succeeded": 8}
    assert ran == Counter({**dict.fromkeys(range(8), 1), 3: 2})
