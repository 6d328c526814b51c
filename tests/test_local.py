"""End to end through real processes: aioboto3 -> local runtime -> awslambdaric -> handler."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from aiofanout import (
    LambdaTarget,
    PayloadTooLarge,
    Retry,
    SqsTarget,
    TaskFailed,
    UsageError,
    dispatch_many,
)
from aiofanout.errors import NotFound
from aiofanout.local import EventSourceMapping, Faults, FunctionConfig, LocalAws, stack
from aiofanout.testing import eventually

# End to end on a local stack of real processes: every test here is slow.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

FUNCTIONS = str(Path(__file__).with_name("lambda_functions"))


def add(aws: LocalAws, handler: str, **kwargs: Any) -> str:
    name = f"fn-{uuid.uuid4().hex[:8]}"
    aws.add_function(FunctionConfig(name, handler, code_paths=[FUNCTIONS], **kwargs))
    return name


def target(aws: LocalAws, name: str, **kwargs: Any) -> LambdaTarget:
    kwargs.setdefault("task", None)
    return LambdaTarget(
        name, endpoint_url=aws.lambda_endpoint_url, region_name="us-east-1", **kwargs
    )


async def test_request_response_runs_the_task_in_awslambdaric(aws: LocalAws) -> None:
    name = add(aws, "app_worker.lambda_handler", reserved_concurrency=3)
    result = await dispatch_many(target(aws, name, task="square"), range(12), concurrency=3)
    assert result.values() == [n * n for n in range(12)]
    stats = aws.runtime.stats(name)
    assert 1 <= len(stats["cold_starts_ms"]) <= 3  # warm environments were reused
    assert stats["invocations"] == 12


async def test_the_handler_gets_a_real_context(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_MAX_CONCURRENCY", "8")  # must not leak into environments
    name = add(
        aws, "plain.context_info", timeout=7, memory=256, environment={"CUSTOM_SETTING": "on"}
    )
    result = await dispatch_many(target(aws, name), [{}], concurrency=1)
    info = result[0].value
    assert 0 < info["remaining_ms"] <= 7000
    assert info["memory"] == "256"
    assert info["arn"].endswith(f":function:{name}")
    assert info["name"] == name
    assert info["custom"] == "on"
    assert info["max_concurrency"] is None
    with pytest.raises(UsageError, match="reserved_concurrency"):
        FunctionConfig("f", "plain.echo", environment={"AWS_LAMBDA_MAX_CONCURRENCY": "4"})
    assert len(info["request_id"]) == 36


async def test_event_and_dry_run_through_the_runtime(aws: LocalAws, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    name = add(aws, "app_worker.lambda_handler", environment={"NOTES_FILE": str(notes)})
    event = target(aws, name, task="square", invocation_type="Event")
    result = await dispatch_many(event, [3, 4], concurrency=2)
    assert [v["status"] for v in result.values()] == [202, 202]
    await eventually(
        lambda: notes.exists() and len(notes.read_text().splitlines()) == 2, timeout=20
    )
    assert sorted(notes.read_text().splitlines()) == ["square 3", "square 4"]
    dry = await dispatch_many(target(aws, name, invocation_type="DryRun"), [1], concurrency=1)
    assert dry.values() == [None]


async def test_throttling_at_the_reserved_concurrency_is_absorbed_by_retries(aws: LocalAws) -> None:
    name = add(aws, "plain.sleep", reserved_concurrency=2)
    result = await dispatch_many(
        target(aws, name),
        [{"seconds": 0.1}] * 10,
        concurrency=6,
        retry=Retry(attempts=30, base=0.05, cap=0.2),
    )
    assert result.ok, result.failures()
    stats = aws.runtime.stats(name)
    assert stats["throttles"] > 0
    assert stats["environments"] <= 2
    assert result.retries >= stats["throttles"]


async def test_a_function_timeout_kills_the_environment_and_the_next_invoke_works(
    aws: LocalAws,
) -> None:
    name = add(aws, "plain.sleep", timeout=1)
    result = await dispatch_many(target(aws, name), [{"seconds": 5}], concurrency=1)
    error = result[0].error
    assert isinstance(error, TaskFailed)
    assert error.remote_type == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in error.message
    again = await dispatch_many(target(aws, name), [{"seconds": 0}], concurrency=1)
    assert again.values() == ["awake"]


async def test_a_crash_fails_its_invoke_and_the_environment_is_replaced(aws: LocalAws) -> None:
    name = add(aws, "plain.crash")
    result = await dispatch_many(target(aws, name), [{}], concurrency=1)
    error = result[0].error
    assert isinstance(error, TaskFailed)
    assert error.remote_type == "Runtime.ExitError"
    assert "exit status 3" in error.message
    assert aws.runtime.stats(name)["environments"] == 0


async def test_a_handler_that_cannot_be_imported_is_an_init_error(aws: LocalAws) -> None:
    name = add(aws, "broken.handler")
    result = await dispatch_many(target(aws, name), [{}], concurrency=1)
    error = result[0].error
    assert isinstance(error, TaskFailed)
    assert error.remote_type == "Runtime.ImportModuleError"
    assert "broken on purpose" in error.message


async def test_a_handler_error_is_a_function_error_with_its_type(aws: LocalAws) -> None:
    name = add(aws, "plain.fail")
    result = await dispatch_many(target(aws, name), [{}], concurrency=1)
    error = result[0].error
    assert isinstance(error, TaskFailed)
    assert error.remote_type == "KeyError"


async def test_injected_faults(aws: LocalAws) -> None:
    errors = add(aws, "plain.echo", faults=Faults(error=1.0))
    result = await dispatch_many(target(aws, errors), [{}], concurrency=1)
    assert isinstance(result[0].error, TaskFailed)
    assert result[0].error.remote_type == "InjectedFault"
    hangs = add(aws, "plain.echo", timeout=0.5, faults=Faults(hang=1.0))
    result = await dispatch_many(target(aws, hangs), [{}], concurrency=1)
    assert isinstance(result[0].error, TaskFailed)
    assert result[0].error.remote_type == "Sandbox.Timedout"
    slow = add(aws, "plain.echo", faults=Faults(latency=0.3))
    result = await dispatch_many(target(aws, slow), [{"x": 1}, {"x": 2}], concurrency=2)
    assert result.values() == [{"x": 1}, {"x": 2}]
    assert result.latency.p50 >= 0.3
    crashes = add(aws, "plain.echo", faults=Faults(crash=1.0))
    result = await dispatch_many(target(aws, crashes), [{}], concurrency=1)
    assert isinstance(result[0].error, TaskFailed)
    assert result[0].error.remote_type == "Runtime.ExitError"


async def test_invoke_api_errors_reach_botocore_as_its_exceptions(aws: LocalAws) -> None:
    result = await dispatch_many(target(aws, "no-such-function"), [{}], concurrency=1)
    assert isinstance(result[0].error, NotFound)
    name = add(aws, "plain.echo")
    big = {"blob": "x" * (7 * 1024 * 1024)}
    from aiofanout import PayloadLimits

    unchecked = target(aws, name, limits=PayloadLimits(lambda_sync_payload=64 * 1024 * 1024))
    result = await dispatch_many(unchecked, [big], concurrency=1)
    assert isinstance(result[0].error, PayloadTooLarge)  # the runtime's 413


async def test_a_plain_boto3_client_works_against_the_runtime(aws: LocalAws) -> None:
    import boto3

    name = add(aws, "plain.echo")

    def invoke() -> Any:
        client = boto3.client(
            "lambda", endpoint_url=aws.lambda_endpoint_url, region_name="us-east-1"
        )
        response = client.invoke(FunctionName=name, Payload=json.dumps({"hello": "boto3"}))
        return response["StatusCode"], json.loads(response["Payload"].read())

    assert await asyncio.to_thread(invoke) == (200, {"hello": "boto3"})


async def test_a_failed_event_reaches_the_on_failure_queue_after_the_retries(
    aws: LocalAws, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    failures = await aws.create_queue(f"failures-{uuid.uuid4().hex[:8]}")
    name = add(
        aws,
        "app_worker.lambda_handler",
        event_retries=2,
        event_retry_delays=(0.05, 0.05),
        on_failure=failures,
        environment={"NOTES_FILE": str(notes)},
    )
    result = await dispatch_many(
        target(aws, name, task="always_fails", invocation_type="Event"), ["x"], concurrency=1
    )
    assert result.ok  # accepted (202); the failure happens later, asynchronously
    async with aws.client("sqs") as sqs:
        messages = await receive_until(sqs, failures, 1)
    record = json.loads(messages[0]["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert record["requestPayload"]["task"] == "always_fails"
    assert notes.read_text().splitlines() == ["fail x"] * 3


async def test_an_sqs_mapping_with_partial_failures_ends_with_every_message_done_or_in_the_dlq(
    aws: LocalAws, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    dlq = await aws.create_queue(f"dlq-{uuid.uuid4().hex[:8]}")
    async with aws.client("sqs") as sqs:
        dlq_arn = (await sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"]))[
            "Attributes"
        ]["QueueArn"]
    queue = await aws.create_queue(
        f"work-{uuid.uuid4().hex[:8]}",
        VisibilityTimeout="1",
        RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
    )
    name = add(aws, "app_worker.lambda_handler", environment={"NOTES_FILE": str(notes)})
    await aws.add_event_source(EventSourceMapping(queue, name, batch_size=10))
    send = SqsTarget(queue, task="picky", endpoint_url=aws.endpoint_url, region_name="us-east-1")
    sent = await dispatch_many(send, range(1, 25), concurrency=2)
    assert sent.ok
    async with aws.client("sqs") as sqs:
        await eventually(lambda: queue_is_empty(sqs, queue), timeout=60, interval=0.2)
        dead = await receive_until(sqs, dlq, 3)
    dead_args = sorted(json.loads(m["Body"])["args"][0] for m in dead)
    assert dead_args == [7, 14, 21]
    lines = notes.read_text().splitlines()
    succeeded = {int(line.split()[1]) for line in lines} - {7, 14, 21}
    assert succeeded == set(range(1, 25)) - {7, 14, 21}
    assert sum(line in {"picky 7", "picky 14", "picky 21"} for line in lines) == 6  # twice each


async def test_the_stack_leaves_no_process_behind() -> None:
    async with stack() as local:
        name = f"fn-{uuid.uuid4().hex[:8]}"
        local.add_function(FunctionConfig(name, "plain.echo", code_paths=[FUNCTIONS]))
        result = await dispatch_many(
            LambdaTarget(
                name, task=None, endpoint_url=local.lambda_endpoint_url, region_name="us-east-1"
            ),
            [{}] * 4,
            concurrency=4,
        )
        assert result.ok
        pids = [*local.runtime.pids()]
        assert local.moto.process is not None
        pids.append(local.moto.process.pid)
        assert len(pids) >= 2
    for pid in pids:
        assert not alive(pid), pid


async def test_the_stack_stops_its_processes_when_the_body_raises() -> None:
    pids: list[int] = []

    async def run_and_fail() -> None:
        async with stack() as local:
            name = f"fn-{uuid.uuid4().hex[:8]}"
            local.add_function(FunctionConfig(name, "plain.echo", code_paths=[FUNCTIONS]))
            echo = LambdaTarget(
                name, task=None, endpoint_url=local.lambda_endpoint_url, region_name="us-east-1"
            )
            await dispatch_many(echo, [{}], concurrency=1)
            pids.extend(local.runtime.pids())
            assert local.moto.process is not None
            pids.append(local.moto.process.pid)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await run_and_fail()
    assert len(pids) >= 2
    assert not any(alive(pid) for pid in pids)


# -- helpers -------------------------------------------------------------------------------


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())


async def queue_is_empty(sqs: Any, url: str) -> bool:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names))["Attributes"]
    return all(int(attributes[n]) == 0 for n in names)


async def receive_until(
    sqs: Any, url: str, count: int, timeout: float = 30
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []

    async def all_arrived() -> bool:
        got = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages.extend(got.get("Messages", []))
        return len(messages) >= count

    await eventually(all_arrived, timeout=timeout, interval=0)
    return messages


EXAMPLES = str(Path(__file__).resolve().parents[1] / "examples")


async def test_the_example_orchestrator_lambda_fans_out_to_the_worker_lambda(
    aws: LocalAws,
) -> None:
    worker = f"worker-{uuid.uuid4().hex[:6]}"
    aws.add_function(FunctionConfig(worker, "worker.lambda_handler", code_paths=[EXAMPLES]))
    orchestrator = f"orchestrator-{uuid.uuid4().hex[:6]}"
    aws.add_function(
        FunctionConfig(
            orchestrator,
            "orchestrator.handler",
            code_paths=[EXAMPLES],
            timeout=60,
            environment={
                "WORKER_FUNCTION": worker,
                "AWS_ENDPOINT_URL_LAMBDA": aws.lambda_endpoint_url,
            },
        )
    )
    keys = [f"k{i}.jpg" for i in range(25)]
    result = await dispatch_many(
        target(aws, orchestrator), [{"keys": keys, "concurrency": 5}], concurrency=1
    )
    summary = result.values()[0]
    assert summary["counts"] == {"succeeded": 25}
    assert summary["failed"] == []
    assert aws.runtime.stats(worker)["invocations"] >= 25


async def test_the_example_service_fans_out_per_request(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from aiohttp.test_utils import TestClient, TestServer

    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", aws.lambda_endpoint_url)
    monkeypatch.syspath_prepend(EXAMPLES)
    sys.modules.pop("service", None)
    import service  # type: ignore[import-not-found]

    worker = f"worker-{uuid.uuid4().hex[:6]}"
    aws.add_function(FunctionConfig(worker, "worker.lambda_handler", code_paths=[EXAMPLES]))
    async with TestClient(TestServer(service.make_app(worker), host="127.0.0.1")) as client:
        response = await client.post("/thumbnails", json={"keys": ["a.jpg", "b.jpg"]})
        assert response.status == 200
        body = await response.json()
    assert [t["key"] for t in body["thumbnails"]] == ["a.jpg", "b.jpg"]


async def test_throttle_after_queues_invokes_instead_of_answering_429(aws: LocalAws) -> None:
    name = add(aws, "plain.sleep", reserved_concurrency=1, throttle_after=30)
    result = await dispatch_many(target(aws, name), [{"seconds": 0.05}] * 5, concurrency=5, retry=1)
    assert result.ok
    stats = aws.runtime.stats(name)
    assert stats["throttles"] == 0
    assert stats["environments"] == 1


async def test_environments_die_with_a_runtime_that_is_killed_outright(tmp_path: Path) -> None:
    import signal
    import sys

    marker = tmp_path / "asleep"
    (tmp_path / "sleeper.py").write_text(
        "import pathlib, time\n"
        "def handler(event, context):\n"
        "    pathlib.Path(event['marker']).touch()  # now in the handler, not polling\n"
        "    time.sleep(event['seconds'])\n"
    )
    payload = json.dumps({"seconds": 120, "marker": str(marker)}).encode()
    script = tmp_path / "runtime.py"
    script.write_text(
        "import asyncio, os\n"
        "from aiofanout.local import FunctionConfig, LocalLambda\n"
        "async def main():\n"
        "    runtime = await LocalLambda().start()\n"
        "    runtime.add_function(FunctionConfig(\n"
        f"        's', 'sleeper.handler', timeout=300, code_paths=[{str(tmp_path)!r}]))\n"
        f"    busy = asyncio.create_task(runtime.invoke('s', {payload!r}))\n"
        f"    while not os.path.exists({str(marker)!r}):  # the handler is asleep from here on\n"
        "        await asyncio.sleep(0.05)\n"
        "    print(*runtime.pids(), flush=True)\n"
        "    await busy\n"
        "    await asyncio.sleep(3600)\n"
        "asyncio.run(main())\n"
    )
    parent = await asyncio.create_subprocess_exec(
        sys.executable, str(script), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in (await parent.stdout.readline()).split()]
        assert pids
        assert all(alive(pid) for pid in pids)
        # No cleanup runs, and the busy handler polls nothing that could notice: only the
        # death signal the runtime asked Linux for (PR_SET_PDEATHSIG) ends it.
        parent.send_signal(signal.SIGKILL)
        await parent.wait()
        await eventually(lambda: not any(alive(pid) for pid in pids), timeout=10)
    finally:
        if parent.returncode is None:
            parent.kill()
            await parent.wait()


# -- fault dice (async only because this module's pytestmark runs every test on its loop) -----


async def test_seeded_fault_draws_repeat_and_each_fault_fires_at_its_fraction() -> None:
    faults = Faults(throttle=0.1, error=0.2, crash=0.05, hang=0.3, latency=0.25, seed=42)
    first = [faults.draw(dice) for dice in [faults.dice()] for _ in range(20_000)]
    again = [faults.draw(dice) for dice in [faults.dice()] for _ in range(20_000)]
    assert first == again  # the same seed, the same faults in the same order
    for name, fraction in [("throttle", 0.1), ("error", 0.2), ("crash", 0.05), ("hang", 0.3)]:
        rate = sum(getattr(d, name) for d in first) / len(first)
        assert abs(rate - fraction) < 0.015, (name, rate)
    assert {d.latency for d in first} == {0.25}
    assert first != [faults.draw(Faults(seed=43).dice()) for _ in range(100)]


async def test_a_fault_at_zero_never_fires_and_rolls_no_dice() -> None:
    only_crash = Faults(crash=0.5, seed=7)
    dice = only_crash.dice()
    draws = [only_crash.draw(dice) for _ in range(1_000)]
    assert not any(d.throttle or d.error or d.hang for d in draws)
    assert 400 < sum(d.crash for d in draws) < 600
    # One roll per draw: the crash sequence is the seeded dice's own, roll for roll.
    reference = only_crash.dice()
    assert [d.crash for d in draws] == [reference.random() < 0.5 for _ in range(1_000)]
    assert Faults().draw(Faults().dice()) == Faults(seed=1).draw(Faults(seed=1).dice())
