"""Defects a new user and an attack probe found, each pinned by a test that failed before its fix.

Wire and worker points first (unit tests of one function), then the worker against a real moto
server: a refused claim touches nothing, and an ``Event`` + ``replies`` error is answered once.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from aiofanout import ClaimCheck, Status, TaskFailed, TaskTimedOut, UsageError, dispatch_many
from aiofanout.errors import BadSignature, ClaimRefused, InvalidEnvelope
from aiofanout.testing import MotoServer, eventually_sync
from aiofanout.wire import ClaimRef, decode_task, encode_task, secret_from_env
from aiofanout.worker import App

SECRET = "defects-secret"


# -- point 6: hostile envelopes are refused as envelope errors, never a crash ---------------------


def test_an_envelope_nested_thousands_deep_is_an_invalid_envelope() -> None:
    deep = '{"v":1,"id":"e","task":"t","args":[' + "[" * 5000 + "]" * 5000 + "]}"
    with pytest.raises(InvalidEnvelope, match="nested too deeply"):
        decode_task(deep)
    with pytest.raises(InvalidEnvelope, match="nested too deeply"):
        decode_task(deep, secret=SECRET)


def test_a_non_ascii_signature_is_a_bad_signature() -> None:
    data = json.loads(encode_task("t", [1], {}, secret=SECRET))
    data["sig"] = "é" * 64
    with pytest.raises(BadSignature):
        decode_task(json.dumps(data), secret=SECRET)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json_on_the_unsigned_path(constant: str) -> None:
    raw = '{"v":1,"id":"e","task":"t","args":[' + constant + "]}"
    with pytest.raises(InvalidEnvelope, match="not JSON"):
        decode_task(raw)
    # A string that merely contains the word still decodes.
    assert decode_task('{"v":1,"id":"e","task":"t","args":["NaN"]}').args == ["NaN"]


# -- point 15: an event that is not an envelope says so ------------------------------------------


@pytest.mark.parametrize(
    "event",
    [{"hello": "world"}, {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}],
)
def test_an_event_that_is_not_an_envelope_names_its_keys_and_the_way_to_build_one(
    event: dict[str, Any],
) -> None:
    with pytest.raises(InvalidEnvelope) as caught:
        decode_task(json.dumps(event))
    message = caught.value.message
    assert "not an aiofanout task envelope" in message
    assert "upgrade" not in message
    for key in event:
        assert repr(key) in message
    assert "world" not in message  # key names only, never values
    assert "encode_task" in message


# -- point 5: an empty secret, and the documented way to read one ---------------------------------


def test_an_empty_secret_is_refused_everywhere_it_signs() -> None:
    with pytest.raises(UsageError, match="empty"):
        App("empty", secret="")
    with pytest.raises(UsageError, match="empty"):
        App("empty", secret=b"")
    with pytest.raises(UsageError, match="empty"):
        encode_task("t", [], {}, secret="")
    App("unsigned", secret=None)  # the explicit opt-out stays


def test_secret_from_env_fails_loudly_when_the_variable_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FANOUT_SECRET", raising=False)
    with pytest.raises(UsageError, match="FANOUT_SECRET is not set"):
        secret_from_env("FANOUT_SECRET")
    monkeypatch.setenv("FANOUT_SECRET", "")
    with pytest.raises(UsageError, match="FANOUT_SECRET is empty"):
        secret_from_env()
    monkeypatch.setenv("FANOUT_SECRET", "s3cret")
    assert App("signed", secret=secret_from_env()).secret == "s3cret"


@pytest.mark.slow
async def test_a_reply_not_signed_by_the_worker_is_never_taken_as_a_result(
    moto: MotoServer, sqs: Any, queue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiofanout.targets import SqsTarget
    from aiofanout.testing import sqs_event

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)  # the workers' reply client
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    signed, unsigned = App("signed", secret="s3cret"), App("unsigned")
    for app in (signed, unsigned):

        @app.task(name="double")
        async def double(x: int) -> int:
            return 2 * x

    target = SqsTarget(
        queue_url, task="double", secret="s3cret", replies=True,
        endpoint_url=moto.endpoint_url, region_name="us-east-1",
    )  # fmt: skip
    run = asyncio.create_task(dispatch_many(target, [1, 2, 3], concurrency=3, timeout=30))
    handled = 0
    while handled < 3:
        got = await sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in got.get("Messages", []):
            envelope = json.loads(message["Body"])
            [x] = envelope["args"]
            if x == 1:  # anyone who can write to the reply queue, knowing the envelope id
                forged = {"v": 1, "id": envelope["id"], "ok": True, "value": "forged"}
                await sqs.send_message(
                    QueueUrl=envelope["reply_to"], MessageBody=json.dumps(forged)
                )
            else:  # 2: a worker with the secret; 3: one without
                worker = signed if x == 2 else unsigned
                await worker.handle(sqs_event([message["Body"]]), None)
            await sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            handled += 1
    result = await run
    by_item = {outcome.item: outcome for outcome in result}
    assert by_item[2].value == 4
    assert "forged" not in [outcome.value for outcome in result]
    assert isinstance(by_item[1].error, BadSignature)
    assert isinstance(by_item[3].error, BadSignature)
    assert "give the worker's App the same secret" in str(by_item[3].error)
    for app in (signed, unsigned):
        await app.runner.aclose()


def test_an_invocation_record_counts_only_about_an_envelope_the_sender_signed() -> None:
    from aiofanout.targets._reply_router import parse  # white-box: the reply queue's parser

    def record(request: dict[str, Any]) -> str:
        return json.dumps(
            {
                "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
                "requestPayload": request,
                "responsePayload": {"errorType": "ValueError", "errorMessage": "boom"},
            }
        )

    ours = json.loads(encode_task("t", [1], {}, id="e-1", secret="s3cret"))
    theirs = {"v": 1, "id": "e-1", "task": "t", "args": [1]}
    _, error = parse(record(ours), secret="s3cret")
    assert isinstance(error, TaskFailed)
    assert "boom" in error.message
    _, forged = parse(record(theirs), secret="s3cret")
    assert isinstance(forged, BadSignature)
    assert "not sent here" in forged.message


async def test_a_signed_envelope_older_than_max_age_is_refused_unrun() -> None:
    import hashlib
    import hmac

    from aiofanout.errors import Expired
    from aiofanout.wire import decode_task

    app = App("fresh-only", secret="s3cret", max_age=60)
    ran: list[int] = []

    @app.task
    async def note(x: int) -> int:
        ran.append(x)
        return x

    def signed(issued_ms: int | None) -> bytes:
        body = json.loads(encode_task("note", [issued_ms or 0], {}, secret="s3cret"))
        del body["sig"]
        body.pop("issued_ms")
        if issued_ms is not None:
            body["issued_ms"] = issued_ms
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        body["sig"] = hmac.new(b"s3cret", canonical, hashlib.sha256).hexdigest()
        return json.dumps(body).encode()

    now = int(time.time() * 1000)
    assert decode_task(encode_task("note", [], {}, secret="s3cret")).issued_ms is not None
    fresh = await app.run_envelope(signed(now - 30_000))
    stale = await app.run_envelope(signed(now - 61_000))
    undated = await app.run_envelope(signed(None))
    assert fresh.error is None
    assert isinstance(stale.error, Expired)
    assert "past this app's max_age=60 s" in str(stale.error)
    assert isinstance(undated.error, Expired)
    assert ran == [now - 30_000]  # only the fresh one ran
    with pytest.raises(UsageError, match="give the app a secret too"):
        App("unsigned", max_age=60)
    with pytest.raises(UsageError, match="seconds > 0"):
        App("signed", secret="s3cret", max_age=0)


# -- point 16: values that keep their positions ---------------------------------------------------


async def test_values_with_a_default_keep_every_item_in_its_place() -> None:
    async def odd_fails(n: int) -> int:
        if n % 2:
            raise ValueError(n)
        return n * 10

    result = await dispatch_many(odd_fails, range(6), concurrency=3, retry=1)
    assert result.values() == [0, 20, 40]  # only what succeeded
    assert result.values(default=None) == [0, None, 20, None, 40, None]
    assert len(result.values(default=-1)) == len(result)


# -- point 17: the worker's own timeout is a timeout on the sender --------------------------------


async def test_a_task_the_worker_stopped_ends_timed_out_not_failed() -> None:
    worker = App("stops")

    @worker.task(timeout=0.05)
    async def slow(n: int) -> None:
        await asyncio.sleep(10)

    # Eager dispatch goes through the wire's encode, the worker's run and the reply's decode.
    result = await dispatch_many(slow, [1], concurrency=1, retry=1)
    [outcome] = result
    assert outcome.status is Status.TIMED_OUT
    assert isinstance(outcome.error, TaskTimedOut)
    assert isinstance(outcome.error, TimeoutError)


# -- point 1: a refused claim never touches the object (a real moto server) -----------------------


@pytest_asyncio.fixture
async def s3(moto: MotoServer, aioboto3_session: Any) -> AsyncIterator[Any]:
    async with aioboto3_session.client("s3", endpoint_url=moto.endpoint_url) as client:
        yield client


async def _bucket(s3: Any) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    await s3.create_bucket(Bucket=name)
    return name


def _claimed(ref: ClaimRef, *, secret: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(encode_task("echo", [], {}, secret=None))
    data["claim"] = ref.model_dump()
    if secret is not None:
        from aiofanout._wire import sign
        from aiofanout._wire._envelopes import _dumps

        data["sig"] = sign(_dumps(data).encode(), secret)
    return data


async def _exists(s3: Any, bucket: str, key: str) -> bool:
    listed = await s3.list_objects_v2(Bucket=bucket, Prefix=key)
    return any(o["Key"] == key for o in listed.get("Contents", []))


@pytest.mark.parametrize("where", ["other bucket", "outside the prefix", "climbing out"])
@pytest.mark.slow
async def test_a_claim_outside_the_bucket_and_prefix_is_refused_and_nothing_is_deleted(
    moto: MotoServer, s3: Any, where: str
) -> None:
    mine, other = await _bucket(s3), await _bucket(s3)
    claims = ClaimCheck(bucket=mine, endpoint_url=moto.endpoint_url, region_name="us-east-1")
    bucket, key = {
        "other bucket": (other, "aiofanout/claims/precious"),
        "outside the prefix": (mine, "precious/data"),
        "climbing out": (mine, "aiofanout/claims/../precious"),
    }[where]
    await s3.put_object(Bucket=bucket, Key=key, Body=b"precious")
    worker = App("claims", claim_check=claims)

    @worker.task
    async def echo() -> str:
        return "ran"

    ref = ClaimRef(bucket=bucket, key=key, size=8, sha256="0" * 64)
    result = await worker.run_envelope(_claimed(ref))
    assert isinstance(result.error, ClaimRefused)
    assert await _exists(s3, bucket, key)  # refused, and left alone
    with pytest.raises(ClaimRefused):
        await claims.forget(ref)
    assert await _exists(s3, bucket, key)


@pytest.mark.slow
async def test_an_object_larger_than_its_reference_is_refused_unread(
    moto: MotoServer, s3: Any
) -> None:
    bucket = await _bucket(s3)
    claims = ClaimCheck(bucket=bucket, endpoint_url=moto.endpoint_url, region_name="us-east-1")
    key = claims.prefix + "big"
    await s3.put_object(Bucket=bucket, Key=key, Body=b"x" * 2_000_000)
    ref = ClaimRef(bucket=bucket, key=key, size=10, sha256="0" * 64)
    with pytest.raises(ClaimRefused, match=r"2,000,000 bytes, not the 10.*unread"):
        await claims.read(ref)


# -- point 11: an Event + replies error is answered once, not re-run by Lambda --------------------


async def test_an_error_sent_to_the_reply_queue_ends_the_invocation_without_raising(
    moto: MotoServer, sqs: Any, queue_url: str
) -> None:
    worker = App("answers-once")
    runs = []

    @worker.task
    async def boom() -> None:
        runs.append(1)
        raise ValueError("broken")

    worker.runner.reply_client = sqs
    envelope = json.loads(encode_task("boom", [], {}, reply_to=queue_url))
    answer = await worker.handle(envelope, None)  # returns: Lambda sees success, no retries
    assert answer["ok"] is False
    assert answer["error"]["type"] == "ValueError"
    received = await sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)
    [message] = received["Messages"]
    reply = json.loads(message["Body"])
    assert reply["id"] == envelope["id"]
    assert reply["error"]["type"] == "ValueError"
    assert runs == [1]
    # Without a reply queue the error still fails the invocation (Lambda's retries, on-failure).
    with pytest.raises(ValueError, match="broken"):
        await worker.handle(json.loads(encode_task("boom", [], {})), None)


# -- point 15: configuration mistakes are usage errors that name the fix --------------------------


def test_an_endpoint_url_without_a_scheme_says_to_add_it() -> None:
    from aiofanout import LambdaTarget

    with pytest.raises(UsageError, match=r"endpoint_url='http://127\.0\.0\.1:9101'"):
        LambdaTarget("worker", task=None, endpoint_url="127.0.0.1:9101")


async def test_no_region_anywhere_is_a_usage_error_naming_region_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from aiofanout import LambdaTarget

    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    target = LambdaTarget("worker", task=None)
    with pytest.raises(UsageError, match="region_name="):
        await dispatch_many(target, [1], concurrency=1)


# -- point 9: the moto server never outlives its parent, and a port in use is an error -----------


def test_a_moto_port_in_use_is_an_error_not_the_old_servers_state(moto: MotoServer) -> None:
    with pytest.raises(UsageError, match=f"port {moto.port} .* is in use"):
        MotoServer(port=moto.port).start()


@pytest.mark.slow
def test_the_moto_server_dies_with_a_parent_killed_by_sigkill() -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys

    script = (
        "import sys, time\n"
        "from aiofanout.testing import MotoServer\n"
        "server = MotoServer().start()\n"
        "print(server.port, server.process.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    port, _moto_pid = (int(word) for word in parent.stdout.readline().split())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=10)
    parent.stdout.close()

    def listening() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    # The orphan's watchdog notices within 0.5 s.
    eventually_sync(lambda: not listening(), timeout=15, interval=0.1)  # child outlived parent?


@pytest.mark.slow
def test_sigterm_of_a_program_waiting_on_replies_deletes_its_reply_queue(
    moto: MotoServer,
) -> None:
    import signal
    import subprocess
    import sys

    import boto3

    sqs = boto3.client("sqs", endpoint_url=moto.endpoint_url, region_name="us-east-1")
    work = sqs.create_queue(QueueName=f"work-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    script = (
        "import asyncio, sys\n"
        "from aiofanout import dispatch_many\n"
        "from aiofanout.targets import SqsTarget\n"
        "async def main():\n"
        "    target = SqsTarget(sys.argv[1], task='nap', replies=True,\n"
        "                       endpoint_url=sys.argv[2], region_name='us-east-1')\n"
        "    print('fanning out', flush=True)\n"
        "    await dispatch_many(target, range(3), concurrency=3, timeout=120)\n"  # nobody answers
        "asyncio.run(main())\n"
    )

    def reply_queues() -> list[str]:
        urls = sqs.list_queues(QueueNamePrefix="aiofanout-replies-").get("QueueUrls", [])
        return list(urls)

    before = set(reply_queues())
    program = subprocess.Popen(
        [sys.executable, "-c", script, work, moto.endpoint_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert program.stdout is not None
        assert program.stdout.readline().strip() == "fanning out"
        # The program makes its reply queue.
        made = eventually_sync(lambda: set(reply_queues()) - before, timeout=30, interval=0.1)

        def all_sent() -> bool:  # the items are sent: the program waits on their replies
            attributes = sqs.get_queue_attributes(QueueUrl=work, AttributeNames=["All"])
            return int(attributes["Attributes"]["ApproximateNumberOfMessages"]) >= 3

        eventually_sync(all_sent, timeout=30, interval=0.1)
        program.send_signal(signal.SIGTERM)
        assert program.wait(timeout=30) == -signal.SIGTERM  # it still ends by SIGTERM
    finally:
        program.kill()
        program.communicate()
    assert not made & set(reply_queues()), "SIGTERM left the reply queue behind"
    sqs.delete_queue(QueueUrl=work)


@pytest.mark.slow
async def test_the_sigterm_handler_is_there_only_while_a_reply_queue_of_its_own_is(
    moto: MotoServer, queue_url: str
) -> None:
    import signal

    from aiofanout.targets import SqsTarget

    target = SqsTarget(
        queue_url, task="nap", replies=True, endpoint_url=moto.endpoint_url, region_name="us-east-1"
    )
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    seen: list[object] = []
    result = await dispatch_many(
        target,
        range(2),
        concurrency=2,
        timeout=1.0,
        on_progress=lambda progress: seen.append(signal.getsignal(signal.SIGTERM)),
    )
    assert len(seen) > 2
    assert signal.SIG_DFL not in seen[:-1]  # handled while the run waited on replies
    assert result.counts[Status.TIMED_OUT] == 2  # nobody answered
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
