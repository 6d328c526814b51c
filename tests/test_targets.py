"""The AWS and HTTP targets with real aioboto3/aiohttp clients, against moto and stub servers."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from aiofanout import (
    AmbiguousError,
    Call,
    FileJournal,
    HttpTarget,
    LambdaTarget,
    PayloadLimits,
    PayloadTooLarge,
    Retry,
    SqsTarget,
    Status,
    TaskFailed,
    Throttled,
    UsageError,
    dispatch_many,
)
from aiofanout.errors import (
    AccessDenied,
    ConnectError,
    NotFound,
    RequestRejected,
    ServerError,
    UnknownTask,
)
from aiofanout.testing import MotoServer, eventually, free_port
from aiofanout.wire import decode_task
from aiofanout.worker import App

from .stubs import (
    Gate,
    StubServer,
    function_error,
    lambda_error,
    lambda_ok,
    slow,
    sqs_batch,
)

# Every fast test runs on both client paths, lean and aioboto3 (see conftest).
pytestmark = pytest.mark.usefixtures("aws_client_path")

app = App("targets")


@app.task
async def resize(key: str, width: int = 100) -> str:
    return f"{key}@{width}"


REGION = "us-east-1"


async def receive_all(sqs: Any, url: str, expected: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []

    async def all_received() -> bool:
        got = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        batch = got.get("Messages", [])
        messages.extend(batch)
        if batch:  # a FIFO group stays locked until its messages are deleted
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ]
            await sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        return len(messages) >= expected

    await eventually(all_received, timeout=20, interval=0)
    return messages


# -- SQS on moto ---------------------------------------------------------------------------


async def test_sqs_standard_queue_gets_every_item_as_an_envelope(
    moto: MotoServer, sqs: Any, queue_url: str
) -> None:
    target = SqsTarget(queue_url, task=resize, endpoint_url=moto.endpoint_url, region_name=REGION)
    items = [f"img-{i}.png" for i in range(23)]
    result = await dispatch_many(target, items, concurrency=3)
    assert result.ok, result.failures()
    assert all("message_id" in v for v in result.values())
    messages = await receive_all(sqs, queue_url, 23)
    args = sorted(str(decode_task(m["Body"]).args[0]) for m in messages)
    assert args == sorted(items)
    assert {decode_task(m["Body"]).task for m in messages} == {"resize"}


async def test_sqs_messages_of_a_journaled_run_carry_the_run_and_index_as_their_key(
    moto: MotoServer, sqs: Any, queue_url: str, tmp_path: Path
) -> None:
    target = SqsTarget(queue_url, task="resize", endpoint_url=moto.endpoint_url, region_name=REGION)
    items = [f"img-{i % 3}.png" for i in range(7)]  # equal items, other indexes
    journal = FileJournal(tmp_path)
    result = await dispatch_many(target, items, concurrency=2, journal=journal, run_id="sqs-run")
    assert result.ok, result.failures()
    token = (await journal.check_run("sqs-run"))["token"]
    envelopes = [decode_task(m["Body"]) for m in await receive_all(sqs, queue_url, 7)]
    by_key = {e.idempotency_key: e.args for e in envelopes}
    assert by_key == {f"sqs-run:{token}:{i}": [item] for i, item in enumerate(items)}

    await dispatch_many(target, items[:2], concurrency=2)  # not journaled: no key is made up
    assert [
        decode_task(m["Body"]).idempotency_key for m in await receive_all(sqs, queue_url, 2)
    ] == [
        None,
        None,
    ]


def test_lambda_a_keyed_item_awaiting_its_reply_carries_both_its_key_and_its_reply_id() -> None:
    target = LambdaTarget(
        "worker",
        task="resize",
        invocation_type="Event",
        replies=True,
        endpoint_url="http://127.0.0.1:9",
        region_name=REGION,
    )
    payload = target.prepare_keyed("a.png", "run:token:3")
    envelope = decode_task(payload.body())
    assert envelope.idempotency_key == "run:token:3"
    assert envelope.args == ["a.png"]
    assert envelope.id == payload.reply_id  # the fan-in matches the reply by it
    assert decode_task(target.prepare("a.png").body()).idempotency_key is None


async def test_sqs_fifo_queue_keeps_the_order_of_a_group(
    moto: MotoServer, sqs: Any, fifo_queue_url: str
) -> None:
    target = SqsTarget(
        fifo_queue_url,
        task="resize",
        group_id="g",
        dedup_id=lambda item: f"d-{item}",
        endpoint_url=moto.endpoint_url,
        region_name=REGION,
    )
    result = await dispatch_many(target, range(12), concurrency=1)
    assert result.ok
    messages = await receive_all(sqs, fifo_queue_url, 12)
    assert [decode_task(m["Body"]).args[0] for m in messages] == list(range(12))


async def test_sqs_a_queue_that_does_not_exist_fails_every_item_without_retries(
    moto: MotoServer,
) -> None:
    missing = f"{moto.endpoint_url}/123456789012/no-such-queue-{uuid.uuid4().hex[:6]}"
    target = SqsTarget(missing, task="t", endpoint_url=moto.endpoint_url, region_name=REGION)
    result = await dispatch_many(target, range(5), concurrency=2, retry=Retry(3, base=0))
    assert [o.status for o in result] == [Status.FAILED] * 5
    assert all(isinstance(o.error, NotFound) for o in result)
    assert all(o.attempts == 1 for o in result)
    assert result[0].error is not None
    assert result[0].error.__cause__ is not None  # chained to botocore's ClientError
    # The query-protocol code, as botocore reads it from x-amzn-query-error, on both paths.
    error = result[0].error
    assert isinstance(error, NotFound)
    assert error.code == "AWS.SimpleQueueService.NonExistentQueue"


async def test_sqs_an_endpoint_that_refuses_connections_is_a_retryable_connect_error() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    target = SqsTarget(f"{dead}/123456789012/q", task="t", endpoint_url=dead, region_name=REGION)
    result = await dispatch_many(target, range(3), concurrency=1, retry=Retry(2, base=0))
    assert all(isinstance(o.error, ConnectError) for o in result)
    assert all(o.attempts == 2 for o in result)


@pytest.mark.slow
async def test_sqs_batches_group_by_count_and_by_bytes() -> None:
    async with StubServer(sqs_batch()) as stub:
        limits = PayloadLimits(sqs_batch=3000, sqs_message=2000)
        target = SqsTarget(
            f"{stub.url}/1/q", task=None, endpoint_url=stub.url, region_name=REGION, limits=limits
        )
        small = [{"n": i} for i in range(25)]
        result = await dispatch_many(target, small, concurrency=1)
        assert result.ok
        sizes = [len(json.loads(r)["Entries"]) for r in stub.requests]
        assert sizes == [10, 10, 5]

        stub.requests.clear()
        big = ["x" * 900 for _ in range(7)]  # 902 bytes of JSON each: 3 fit in 3000
        result = await dispatch_many(target, big, concurrency=1)
        assert result.ok
        sizes = [len(json.loads(r)["Entries"]) for r in stub.requests]
        assert sizes == [3, 3, 1]

        stub.requests.clear()
        result = await dispatch_many(target, ["y" * 2500, "ok"], concurrency=1)
        assert isinstance(result[0].error, PayloadTooLarge)
        assert result[1].ok
        assert [len(json.loads(r)["Entries"]) for r in stub.requests] == [1]


async def test_sqs_per_entry_failures_fail_those_items_and_retry_only_server_faults() -> None:
    seen: dict[str, int] = {}

    def fail(entry: dict[str, Any]) -> dict[str, Any] | None:
        arg = str(decode_task(entry["MessageBody"]).args[0])
        seen[arg] = seen.get(arg, 0) + 1
        if arg == "sender":
            return {"SenderFault": True, "Code": "InvalidParameterValue", "Message": "bad"}
        if arg == "server" and seen[arg] == 1:
            return {"SenderFault": False, "Code": "InternalError", "Message": "try again"}
        return None

    async with StubServer(sqs_batch(fail)) as stub:
        target = SqsTarget(f"{stub.url}/1/q", task="t", endpoint_url=stub.url, region_name=REGION)
        items = ["a", "sender", "server", "b"]
        result = await dispatch_many(target, items, concurrency=1, retry=Retry(3, base=0))
    assert [o.status for o in result] == [
        Status.SUCCEEDED,
        Status.FAILED,
        Status.SUCCEEDED,
        Status.SUCCEEDED,
    ]
    assert isinstance(result[1].error, RequestRejected)
    assert result[1].attempts == 1
    assert result[2].attempts == 2
    assert seen == {"a": 1, "sender": 1, "server": 2, "b": 1}
    # The retry carried only the failed entry.
    assert len(json.loads(stub.requests[1])["Entries"]) == 1


@pytest.mark.slow
async def test_sqs_delay_hides_each_message_for_that_long(
    moto: MotoServer, sqs: Any, queue_url: str
) -> None:
    from aiofanout import UsageError

    target = SqsTarget(
        queue_url, task="t", delay=2, endpoint_url=moto.endpoint_url, region_name=REGION
    )
    result = await dispatch_many(target, ["late"], concurrency=1)
    assert result.ok
    hidden = await sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0)
    assert hidden.get("Messages", []) == []  # sent, and not visible yet
    [message] = await receive_all(sqs, queue_url, 1)  # visible once the delay passed
    assert decode_task(message["Body"]).args == ["late"]
    with pytest.raises(UsageError, match="every message would expire unread"):
        SqsTarget(queue_url, task="t", delay=60, expires=30)


def test_sqs_fifo_misuse_is_refused_up_front() -> None:
    from aiofanout import UsageError

    with pytest.raises(UsageError, match="group_id"):
        SqsTarget("http://127.0.0.1/1/q.fifo", task="t")
    with pytest.raises(UsageError, match="delay"):
        SqsTarget("http://127.0.0.1/1/q.fifo", task="t", group_id="g", delay=5)


# -- Lambda on moto (the API path: moto runs no code without Docker) -------------------------


@pytest.fixture(scope="module")
def moto_function(moto: MotoServer) -> str:
    import boto3

    kwargs = {"endpoint_url": moto.endpoint_url, "region_name": REGION}
    iam = boto3.client("iam", **kwargs)
    role = iam.create_role(
        RoleName=f"r-{uuid.uuid4().hex[:6]}",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    name = f"fn-{uuid.uuid4().hex[:6]}"
    boto3.client("lambda", **kwargs).create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )
    return name


async def test_lambda_event_and_dry_run_on_moto(moto: MotoServer, moto_function: str) -> None:
    event = LambdaTarget(
        moto_function,
        task=resize,
        invocation_type="Event",
        endpoint_url=moto.endpoint_url,
        region_name=REGION,
    )
    result = await dispatch_many(event, ["a.png", "b.png"], concurrency=2)
    assert result.ok, result.failures()
    assert all(v["status"] == 202 and v["request_id"] for v in result.values())
    dry = LambdaTarget(
        moto_function,
        task=resize,
        invocation_type="DryRun",
        endpoint_url=moto.endpoint_url,
        region_name=REGION,
    )
    result = await dispatch_many(dry, ["a.png"], concurrency=1)
    assert result.ok
    assert result.values() == [None]


async def test_lambda_a_missing_function_is_not_found(moto: MotoServer) -> None:
    target = LambdaTarget(
        "no-such-function",
        task="t",
        invocation_type="Event",
        endpoint_url=moto.endpoint_url,
        region_name=REGION,
    )
    result = await dispatch_many(target, [1], concurrency=1)
    assert isinstance(result[0].error, NotFound)
    assert result[0].error.code == "ResourceNotFoundException"


# -- Lambda against a stub Invoke API ------------------------------------------------------


def stub_target(stub: StubServer, **kwargs: Any) -> LambdaTarget:
    kwargs.setdefault("task", resize)
    return LambdaTarget("fn", endpoint_url=stub.url, region_name=REGION, **kwargs)


async def test_lambda_request_response_returns_the_task_value() -> None:
    async with StubServer(lambda_ok()) as stub:
        result = await dispatch_many(
            stub_target(stub), ["a", "b", Call("c", width=5)], concurrency=3
        )
    assert result.values() == ["a", "b", "c"]  # the stub echoes the first argument


async def test_lambda_chunks_send_one_invoke_per_chunk_and_one_value_per_item() -> None:
    async with StubServer(lambda_ok()) as stub:
        result = await dispatch_many(stub_target(stub, chunk_size=4), range(10), concurrency=2)
    assert result.values() == list(range(10))
    assert sorted(len(json.loads(r)) for r in stub.requests) == [2, 4, 4]


@pytest.mark.slow
async def test_lambda_throttling_is_retried_after_the_retry_after_hint() -> None:
    calls: list[float] = []

    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return lambda_error(
                429,
                "TooManyRequestsException",
                "Rate exceeded",
                **{
                    "Retry-After": "1",
                    "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
                },
            )
        return await lambda_ok()(request, body)

    async with StubServer(handle) as stub:
        result = await dispatch_many(
            stub_target(stub), ["x"], concurrency=1, retry=Retry(2, base=0)
        )
    assert result.ok
    assert result[0].attempts == 2
    assert calls[1] - calls[0] >= 0.95


async def test_lambda_throttle_error_carries_reason_and_hint() -> None:
    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        return lambda_error(
            429,
            "TooManyRequestsException",
            "Rate exceeded",
            **{"Retry-After": "7", "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"},
        )

    async with StubServer(handle) as stub:
        result = await dispatch_many(stub_target(stub), ["x"], concurrency=1, retry=1)
    error = result[0].error
    assert isinstance(error, Throttled)
    assert error.retry_after == 7.0
    assert error.reason == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert "ReservedFunctionConcurrentInvocationLimitExceeded" in str(error)


async def test_lambda_server_errors_are_retried_and_botocore_does_not_retry_on_its_own() -> None:
    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        return lambda_error(500, "ServiceException", "oops")

    async with StubServer(handle) as stub:
        result = await dispatch_many(
            stub_target(stub), ["x"], concurrency=1, retry=Retry(3, base=0)
        )
    assert isinstance(result[0].error, ServerError)
    assert result[0].attempts == 3
    assert len(stub.requests) == 3  # botocore alone would have sent 3 x 5


async def test_lambda_function_errors_fail_the_item_with_the_remote_type() -> None:
    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        return function_error("ValueError", "width must be positive")

    async with StubServer(handle) as stub:
        result = await dispatch_many(
            stub_target(stub), ["x"], concurrency=1, retry=Retry(3, base=0)
        )
    error = result[0].error
    assert isinstance(error, TaskFailed)
    assert error.remote_type == "ValueError"
    assert error.message == "width must be positive"
    assert result[0].attempts == 1


async def test_lambda_envelope_refusals_keep_their_class() -> None:
    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        return function_error("UnknownTask", "no task named 'resize'")

    async with StubServer(handle) as stub:
        result = await dispatch_many(stub_target(stub), ["x"], concurrency=1)
    assert isinstance(result[0].error, UnknownTask)


@pytest.mark.slow
async def test_lambda_a_slow_invoke_times_out_once_and_is_not_re_sent() -> None:
    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        await slow(2)
        return await lambda_ok()(request, body)

    async with StubServer(handle) as stub:
        result = await dispatch_many(
            stub_target(stub), ["x"], concurrency=1, timeout=0.3, retry=Retry(3, base=0)
        )
        assert result[0].status is Status.TIMED_OUT
        assert result[0].attempts == 1
        assert len(stub.requests) == 1


@pytest.mark.slow
async def test_lambda_retry_ambiguous_opts_in_to_re_sending() -> None:
    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        await slow(2)
        return await lambda_ok()(request, body)

    async with StubServer(handle) as stub:
        target = stub_target(stub, retry_ambiguous=True)
        result = await dispatch_many(
            target, ["x"], concurrency=1, timeout=0.2, retry=Retry(2, base=0)
        )
        assert result[0].attempts == 2


async def test_lambda_a_dropped_connection_after_sending_is_ambiguous() -> None:
    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        await slow(0.1)
        return web.Response(status=200)

    async with StubServer(handle) as stub:
        result = await dispatch_many(
            stub_target(stub), ["x"], concurrency=1, retry=Retry(3, base=0)
        )
    assert isinstance(result[0].error, AmbiguousError)
    assert result[0].attempts == 1


async def test_lambda_the_client_pool_follows_the_cap() -> None:
    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        await slow(0.3)
        return await lambda_ok()(request, body)

    async with StubServer(handle) as stub:
        result = await dispatch_many(stub_target(stub), range(30), concurrency=30)
    assert result.ok
    assert stub.max_in_flight == 30  # botocore's default pool would hold it at 10


async def test_lambda_payload_limits_are_checked_before_sending() -> None:
    async with StubServer(lambda_ok()) as stub:
        target = stub_target(
            stub, invocation_type="Event", limits=PayloadLimits(lambda_async_payload=500)
        )
        result = await dispatch_many(target, ["x" * 600, "small"], concurrency=1)
        assert isinstance(result[0].error, PayloadTooLarge)
        assert "PayloadLimits.lambda_async_payload" in str(result[0].error)
        assert result[1].ok
        assert len(stub.requests) == 1


async def test_lambda_access_denied_and_raw_mode() -> None:
    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        if json.loads(body).get("deny"):
            return lambda_error(403, "AccessDeniedException", "not allowed")
        return web.json_response({"echo": json.loads(body)})

    async with StubServer(handle) as stub:
        target = stub_target(stub, task=None)
        result = await dispatch_many(target, [{"a": 1}, {"deny": True}], concurrency=1)
    assert result[0].value == {"echo": {"a": 1}}
    assert isinstance(result[1].error, AccessDenied)


async def test_a_users_own_client_with_a_small_pool_is_warned_about() -> None:
    import aioboto3
    from aiobotocore.config import AioConfig

    async with StubServer(lambda_ok()) as stub:
        session = aioboto3.Session(region_name=REGION)
        config = AioConfig(max_pool_connections=2)
        async with session.client("lambda", endpoint_url=stub.url, config=config) as client:
            target = LambdaTarget("fn", task=resize, client=client)
            with pytest.warns(UserWarning, match="max_pool_connections is 2"):
                result = await dispatch_many(target, ["a", "b", "c"], concurrency=8)
            assert result.ok
            # The user's client is theirs: still open after the fan-out.
            again = await dispatch_many(target, ["d"], concurrency=1)
            assert again.values() == ["d"]


# -- HTTP ---------------------------------------------------------------------------------------


async def test_http_target_honours_retry_after_and_does_not_retry_4xx() -> None:
    calls: dict[str, int] = {}

    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        item = json.loads(body)
        calls[item] = calls.get(item, 0) + 1
        if item == "busy" and calls[item] == 1:
            return web.Response(status=429, headers={"Retry-After": "0.2"})
        if item == "down" and calls[item] == 1:
            return web.Response(status=503)
        if item == "bad":
            return web.Response(status=400, text="no")
        return web.json_response({"got": item})

    async with StubServer(handle) as stub:
        target = HttpTarget(f"{stub.url}/score")
        started = time.monotonic()
        result = await dispatch_many(
            target, ["ok", "busy", "down", "bad"], concurrency=4, retry=Retry(3, base=0)
        )
    assert [o.status for o in result] == [Status.SUCCEEDED] * 3 + [Status.FAILED]
    assert result[1].value == {"got": "busy"}
    assert calls == {"ok": 1, "busy": 2, "down": 2, "bad": 1}
    assert isinstance(result[3].error, RequestRejected)
    assert time.monotonic() - started >= 0.2


async def test_http_target_names_a_journaled_item_in_an_idempotency_key_header(
    tmp_path: Path,
) -> None:
    seen: list[tuple[str, str | None]] = []

    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        item = json.loads(body)
        seen.append((item, request.headers.get("Idempotency-Key")))
        assert request.headers["X-Team"] == "t"  # the target's own headers still go along
        if item == "flaky" and len(seen) <= 2:
            return web.Response(status=503)  # its retry must carry the same key
        return web.json_response(item)

    async with StubServer(handle) as stub:
        target = HttpTarget(f"{stub.url}/x", headers={"X-Team": "t"})
        journal = FileJournal(tmp_path)
        result = await dispatch_many(
            target,
            ["a", "flaky"],
            concurrency=1,
            retry=Retry(3, base=0),
            journal=journal,
            run_id="h",
        )
        assert result.values() == ["a", "flaky"]
        token = (await journal.check_run("h"))["token"]
        assert seen == [("a", f"h:{token}:0"), ("flaky", f"h:{token}:1"), ("flaky", f"h:{token}:1")]
        seen.clear()
        await dispatch_many(target, ["b"], concurrency=1)
        assert seen == [("b", None)]


async def test_http_target_connection_refused_is_a_connect_error() -> None:
    target = HttpTarget(f"http://127.0.0.1:{free_port()}/x")
    result = await dispatch_many(target, [1], concurrency=1, retry=Retry(2, base=0))
    assert isinstance(result[0].error, ConnectError)
    assert result[0].attempts == 2


async def test_targets_close_what_they_opened() -> None:
    async with StubServer(lambda_ok()) as stub:
        target = stub_target(stub)
        await dispatch_many(target, ["a"], concurrency=1)
        with pytest.raises(UsageError, match="not open"):
            target.client  # noqa: B018 - the property is what is tested
        http = HttpTarget(f"{stub.url}/x")
        async with http.opened(concurrency=1):
            with http.lease() as session:
                assert not session.closed
        assert session.closed
        with pytest.raises(UsageError, match="not open"):
            http.lease()


async def test_targets_use_a_session_or_client_the_user_brings() -> None:
    import aioboto3
    import aiohttp

    async with StubServer(lambda_ok()) as stub:
        session = aioboto3.Session(region_name=REGION)
        target = LambdaTarget("fn", task=resize, session=session, endpoint_url=stub.url)
        result = await dispatch_many(target, ["a", "b"], concurrency=2)
        assert result.values() == ["a", "b"]
        with pytest.raises(UsageError, match="not open"):
            target.client  # noqa: B018 - made from the session for the fan-out, then closed

        async with aiohttp.ClientSession() as http_session:
            http = HttpTarget(
                f"{stub.url}/2015-03-31/functions/fn/invocations", session=http_session
            )
            payload = json.loads(resize.envelope("c"))
            result = await dispatch_many(http, [payload], concurrency=1)
            assert result[0].value["value"] == "c"
            assert not http_session.closed  # the user's session stays theirs


async def test_fan_outs_side_by_side_get_a_client_that_fits_both_and_close_every_one() -> None:
    events: list[str] = []

    class Counting(LambdaTarget):
        async def acquire(self, *, concurrency: int, timeout: float | None) -> Any:
            events.append(f"acquire {concurrency}")
            await asyncio.sleep(0.05)  # a slow client build: the second fan-out must wait for it
            return await super().acquire(concurrency=concurrency, timeout=timeout)

        async def release(self, resource: Any) -> None:
            events.append("release")
            await super().release(resource)

    async with StubServer(lambda_ok()) as stub:
        target = Counting("fn", task=resize, endpoint_url=stub.url, region_name=REGION)
        # The second waits for the first one's client, finds it too small for both, makes one
        # for 3 + 1 calls in flight; the first client is released once its calls are done.
        first, second = await asyncio.gather(
            dispatch_many(target, ["a", "b", "c"], concurrency=3),
            dispatch_many(target, ["d"], concurrency=1),
        )
        assert first.values() == ["a", "b", "c"]
        assert second.values() == ["d"]
        assert events == ["acquire 3", "acquire 4", "release", "release"]
        with pytest.raises(UsageError, match="not open"):
            target.client  # noqa: B018 - the property is what is tested

        async with target.opened(concurrency=4):
            again = await dispatch_many(target, ["e"], concurrency=4)  # fits: no second client
            assert target.client is not None  # open between fan-outs, else UsageError
        assert again.values() == ["e"]
        assert events[4:] == ["acquire 4", "release"]


async def test_a_failed_acquire_leaves_the_target_closed() -> None:
    class Broken(HttpTarget):
        async def acquire(self, *, concurrency: int, timeout: float | None) -> Any:
            raise OSError("no sockets left")

    target = Broken("http://127.0.0.1:1/x")
    with pytest.raises(OSError, match="no sockets"):
        await dispatch_many(target, [1], concurrency=1)
    with pytest.raises(UsageError, match="not open"):
        target.lease()


# -- one target shared by several fan-outs --------------------------------------------------


def gated(gate: Gate, *, beside: Gate | None = None) -> Any:
    """A raw-JSON endpoint: item "beside" waits for ``gate`` to open; the others are held by it."""

    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        item = json.loads(body)
        if item == "beside":
            assert beside is not None
            await beside.hold()  # in flight on the first client while the second is made
            await gate.wait_open()
        else:
            await gate.hold()
        return web.json_response(item)

    return handle


async def test_a_shared_target_grows_for_a_larger_fan_out_beside_a_smaller_one() -> None:
    gate, beside = Gate(expected=30), Gate(expected=1)
    async with StubServer(gated(gate, beside=beside)) as stub:
        target = stub_target(stub, task=None)
        small = asyncio.create_task(dispatch_many(target, ["beside"], concurrency=1))
        async with asyncio.timeout(10):
            await beside.opened.wait()
        big = await dispatch_many(target, [f"item-{i}" for i in range(30)], concurrency=30)
        assert (await small).values() == ["beside"]  # its call on the old client ended normally
    assert big.ok
    assert gate.peak == 30  # on the cap-1 client it was 1


@pytest.mark.slow
async def test_fan_outs_side_by_side_each_keep_their_whole_cap() -> None:
    gate = Gate(expected=30)
    async with StubServer(gated(gate)) as stub:
        target = stub_target(stub, task=None)
        first, second = await asyncio.gather(
            dispatch_many(target, [f"a-{i}" for i in range(15)], concurrency=15),
            dispatch_many(target, [f"b-{i}" for i in range(15)], concurrency=15),
        )
    assert first.ok
    assert second.ok
    assert gate.peak == 30  # a client sized for one of them held both at 15 together


@pytest.mark.slow
async def test_a_target_kept_open_with_the_default_grows_for_a_larger_fan_out() -> None:
    gate = Gate(expected=30)
    async with StubServer(gated(gate)) as stub:
        target = stub_target(stub, task=None)
        async with target.opened():  # sized for 10 calls in flight
            result = await dispatch_many(target, [f"item-{i}" for i in range(30)], concurrency=30)
    assert result.ok
    assert gate.peak == 30


async def test_a_retired_session_is_closed_once_no_call_can_use_it() -> None:
    sessions: list[Any] = []

    class Recording(HttpTarget):
        async def acquire(self, *, concurrency: int, timeout: float | None) -> Any:
            session = await super().acquire(concurrency=concurrency, timeout=timeout)
            sessions.append(session)
            return session

    gate = Gate(expected=30)
    async with StubServer(gated(gate)) as stub:
        target = Recording(f"{stub.url}/x")
        async with target.opened(concurrency=1):
            result = await dispatch_many(target, list(range(30)), concurrency=30)
            first, second = sessions
            assert first.closed  # retired, and no call left on it once the fan-out ended
            assert not second.closed  # still kept open by opened()
            assert second.connector.limit >= 30
        assert second.closed
    assert result.ok
    assert gate.peak == 30


async def test_a_longer_attempt_timeout_gets_a_client_with_a_longer_read_timeout() -> None:
    read_timeouts: list[float] = []

    class Recording(LambdaTarget):
        async def acquire(self, *, concurrency: int, timeout: float | None) -> Any:
            client = await super().acquire(concurrency=concurrency, timeout=timeout)
            read_timeouts.append(client.meta.config.read_timeout)
            return client

    async with StubServer(lambda_ok()) as stub:
        target = Recording("fn", task=resize, endpoint_url=stub.url, region_name=REGION)
        async with target.opened(concurrency=1, timeout=1):
            short = await dispatch_many(target, ["a"], concurrency=1, timeout=1)
            unbounded = await dispatch_many(target, ["b"], concurrency=1)
            shorter = await dispatch_many(target, ["c"], concurrency=1, timeout=0.5)
    assert [short.ok, unbounded.ok, shorter.ok] == [True, True, True]
    # Built for 1 s, then for an unbounded invoke (the longest Lambda run); a shorter one
    # needs nothing new.
    assert read_timeouts == [6.0, 905.0]


async def test_a_users_own_session_with_a_small_connection_limit_is_warned_about() -> None:
    import aiohttp

    async with StubServer(web_echo) as stub:
        connector = aiohttp.TCPConnector(limit=2)
        async with aiohttp.ClientSession(connector=connector) as session:
            target = HttpTarget(f"{stub.url}/x", session=session)
            with pytest.warns(UserWarning, match=r"limit is 2.*TCPConnector\(limit=8\)"):
                result = await dispatch_many(target, [1, 2, 3], concurrency=8)
            assert result.values() == [1, 2, 3]
            assert not session.closed


async def web_echo(request: web.Request, body: bytes) -> web.StreamResponse:
    return web.json_response(json.loads(body))


def test_the_targets_show_the_shortest_public_path_they_are_imported_from() -> None:
    import aiofanout
    from aiofanout import targets

    shown = {name: getattr(targets, name).__module__ for name in targets.__all__}
    assert shown == {
        "Batching": "aiofanout.targets",  # a target author's: not on the top level
        "HttpTarget": "aiofanout",  # also exported by the package itself
        "LambdaTarget": "aiofanout",
        "ReplyStats": "aiofanout.targets",
        "Sent": "aiofanout.targets",  # what aiofanout.dispatch returns for a fire-and-forget send
        "SharedTarget": "aiofanout.targets",
        "SnsTarget": "aiofanout",
        "SqsTarget": "aiofanout",
        "Target": "aiofanout.targets",
    }
    for name, module in shown.items():
        assert getattr(sys.modules[module], name) is getattr(targets, name)
    assert set(shown) - set(aiofanout.__all__) == {
        "Batching",
        "ReplyStats",
        "Sent",
        "SharedTarget",
        "Target",
    }


def test_send_replies_to_names_the_queue_the_worker_answers_and_reply_to_is_its_old_name() -> None:
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/elsewhere"
    for make in (
        lambda **kw: LambdaTarget("worker", task="t", invocation_type="Event", **kw),
        lambda **kw: SqsTarget("https://sqs.us-east-1.amazonaws.com/1/q", task="t", **kw),
    ):
        target = make(send_replies_to=url)
        assert decode_task(target.prepare("x").body()).reply_to == url
        with pytest.warns(DeprecationWarning, match=r"reply_to=.*send_replies_to="):
            old = make(reply_to=url)
        assert decode_task(old.prepare("x").body()).reply_to == url
        with pytest.raises(UsageError, match="drop one"):
            make(send_replies_to=url, reply_to=url)
        with pytest.raises(UsageError, match="not both"):
            make(send_replies_to=url, replies=True)
