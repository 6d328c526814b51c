"""One settlement rule for every way an envelope comes in (issue 19, point 2).

A direct invoke, a chunk, an SQS record and a claim's arguments in S3 end by the same rule:
done (succeeded, answered, or expired), or delivered again (failed with nobody answered).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from aiofanout.errors import BadSignature, Expired
from aiofanout.testing import MotoServer, sqs_event
from aiofanout.wire import encode_task
from aiofanout.worker import App

SECRET = "settle-secret"


def _app() -> App:
    app = App("settle", secret=SECRET)

    @app.task
    async def boom(x: int) -> int:
        raise ValueError(f"boom {x}")

    @app.task
    async def ok(x: int) -> int:
        return x

    return app


def _expired(task: str) -> bytes:
    return encode_task(task, [1], {}, deadline_ms=int(time.time() * 1000) - 1_000, secret=SECRET)


async def test_the_rule_decides_done_or_again_from_the_result_alone() -> None:
    from aiofanout.worker._settlement import Settlement, settlement  # white-box: the rule itself

    app = _app()
    run = app.run_envelope
    failed = await run(encode_task("boom", [1], {}, secret=SECRET))
    answered = await run(encode_task("boom", [1], {}, reply_to="https://q/r", secret=SECRET))
    refused = await run(encode_task("boom", [1], {}, secret="another"))
    expired = await run(_expired("boom"))
    assert settlement(await run(encode_task("ok", [1], {}, secret=SECRET))) is Settlement.DONE
    assert settlement(failed) is Settlement.AGAIN  # nobody has the answer: delivered again
    assert settlement(failed, answered=True) is Settlement.DONE  # a chunk's response carries it
    assert settlement(answered) is Settlement.DONE  # the error reply is the answer
    assert isinstance(refused.error, BadSignature)
    assert settlement(refused) is Settlement.AGAIN  # on to the DLQ / on-failure destination
    assert isinstance(expired.error, Expired)
    assert settlement(expired) is Settlement.DONE  # its sender stopped waiting


async def test_an_expired_envelope_is_done_whichever_way_it_came_in() -> None:
    app = _app()
    # A direct invoke answers it (Lambda does not retry it); an SQS batch does not report it.
    reply = await app.handle(json.loads(_expired("ok")), None)
    assert reply["ok"] is False
    assert reply["error"]["type"] == "Expired"
    batch = await app.handle(sqs_event([_expired("ok").decode()]), None)
    assert batch == {"batchItemFailures": []}


async def test_a_failure_nobody_has_is_delivered_again_whichever_way_it_came_in() -> None:
    app = _app()
    body = encode_task("boom", [1], {}, secret=SECRET)
    with pytest.raises(ValueError, match="boom 1"):  # Lambda retries, then on-failure
        await app.handle(json.loads(body), None)
    batch: dict[str, Any] = await app.handle(sqs_event([body.decode()]), None)
    assert len(batch["batchItemFailures"]) == 1  # SQS delivers it again, then the DLQ
    [reply] = await app.handle([json.loads(body)], None)  # a chunk: its response is the answer
    assert reply["ok"] is False


async def test_a_claim_is_kept_exactly_when_the_envelope_is_delivered_again(
    moto: MotoServer,
) -> None:
    import uuid

    import boto3

    from aiofanout import ClaimCheck
    from aiofanout._wire import TaskSpec, prepare_envelope  # white-box: a claim, no sender

    bucket = f"settle-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=moto.endpoint_url, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    claims = ClaimCheck(bucket=bucket, endpoint_url=moto.endpoint_url, region_name="us-east-1")
    app = App("settle-claims", secret=SECRET, claim_check=claims)

    @app.task
    async def boom(blob: str) -> int:
        raise ValueError("boom")

    async def claimed(task: str) -> tuple[bytes, str]:
        prepared = prepare_envelope(TaskSpec(task, SECRET), "x" * 1000)
        small, (ref, blob) = prepared.claimed(claims)
        await claims.put(ref, blob)
        return small.finish(), ref.key

    def kept(key: str) -> bool:
        listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        return key in {entry["Key"] for entry in listed}

    refused, refused_key = await claimed("no-such-task")  # refused after its claim was read
    await app.handle(sqs_event([refused.decode()]), None)
    assert kept(refused_key)  # delivered again, to the DLQ: its arguments stay with it
    failed, failed_key = await claimed("boom")
    await app.handle(sqs_event([failed.decode()]), None)
    assert kept(failed_key)
    [reply] = await app.handle([json.loads(failed)], None)  # a chunk: answered, so done
    assert reply["ok"] is False
    assert not kept(failed_key)
    await app.runner.aclose()


async def test_a_refused_envelope_is_logged_without_its_arguments(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = _app()
    body = encode_task(
        "ok", ["secret-argument"], {}, deadline_ms=int(time.time() * 1000) - 1_000, secret=SECRET
    )
    with caplog.at_level("WARNING", logger="aiofanout.worker"):
        result = await app.run_envelope(body)
    assert isinstance(result.error, Expired)
    [record] = [r for r in caplog.records if "refused envelope" in r.getMessage()]
    assert "Expired" in record.getMessage()  # done without running: the log is where it shows
    assert json.loads(body)["id"] in record.getMessage()
    assert "secret-argument" not in caplog.text
