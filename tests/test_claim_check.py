"""The claim check: items and replies over the message limit travel through S3 (moto's).

Unit tests of the reference (split, join, signature, digest) first; then real processes:
SqsTarget -> event source mapping -> awslambdaric -> App (with the claim check) -> reply queue,
with a 5 MB item and a 3 MB reply, and a tampered object refused under a secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from aiofanout import (
    Call,
    ClaimCheck,
    LambdaTarget,
    PayloadTooLarge,
    SqsTarget,
    Status,
    dispatch_many,
)
from aiofanout.errors import BadSignature, ClaimRefused
from aiofanout.local import EventSourceMapping, FunctionConfig, LocalAws, stack
from aiofanout.wire import ReplyEnvelope, decode_task, encode_reply
from aiofanout.worker import App

# End to end on a local stack of real processes: every test here is slow.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

FUNCTIONS = str(Path(__file__).with_name("lambda_functions"))
SECRET = "claim-check-secret"
MB = 1_000_000
CLAIMS = ClaimCheck(bucket="unit-bucket")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- the reference alone (white-box: the internal split, join and reply routing) -----------------


async def test_a_split_envelope_names_its_arguments_and_joins_back() -> None:
    from aiofanout._wire import TaskSpec, join_task, prepare_envelope

    prepared = prepare_envelope(TaskSpec("digest", SECRET), Call("x" * 100, reply_size=3), id="e1")
    claimed, (ref, blob) = prepared.claimed(CLAIMS)
    small = claimed.finish()

    assert len(small) < 600
    assert b"xxxx" not in small
    envelope = decode_task(small, secret=SECRET)  # signed again, over the reference
    assert envelope.claim == ref
    assert envelope.args == []
    assert envelope.id == "e1"
    assert ref.bucket == "unit-bucket"
    assert ref.key.startswith("aiofanout/claims/")
    assert ref.size == len(blob)
    assert ref.sha256 == hashlib.sha256(blob).hexdigest()
    joined = join_task(envelope, blob)
    assert joined.args == ["x" * 100]
    assert joined.kwargs == {"reply_size": 3}
    assert joined.claim is None
    assert joined.task == "digest"


async def test_the_signature_covers_the_reference_and_its_digest() -> None:
    from aiofanout._wire import TaskSpec, prepare_envelope

    claimed, _ = prepare_envelope(TaskSpec("digest", SECRET), "x").claimed(CLAIMS)
    small = claimed.finish()
    data = json.loads(small)
    data["claim"]["sha256"] = sha("another object")
    with pytest.raises(BadSignature):
        decode_task(json.dumps(data), secret=SECRET)
    data = json.loads(small)
    data["claim"]["key"] = "aiofanout/claims/elsewhere"
    with pytest.raises(BadSignature):
        decode_task(json.dumps(data), secret=SECRET)


async def test_a_claimed_reply_is_routed_as_its_reference() -> None:
    from aiofanout._wire import ClaimRef
    from aiofanout.targets._reply_router import parse, reply_id

    ref = ClaimRef(bucket="b", key="k", size=3, sha256=sha("abc"))
    body = encode_reply(ReplyEnvelope(id="r1", ok=True, claim=ref)).decode()
    value, error = parse(body)
    assert reply_id(body) == "r1"
    assert value == ref
    assert error is None


async def test_an_app_without_a_claim_check_refuses_a_claimed_envelope() -> None:
    from aiofanout._wire import TaskSpec, prepare_envelope

    app = App("plain")

    @app.task
    async def digest(blob: str) -> int:
        return len(blob)

    claimed, _ = prepare_envelope(TaskSpec("digest"), "x").claimed(CLAIMS)
    result = await app.run_envelope(claimed.finish())
    assert isinstance(result.error, ClaimRefused)
    assert result.reply.error is not None
    assert "claim_check" in result.reply.error.message


# -- through moto's S3 and the local stack ---------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def aws() -> AsyncIterator[LocalAws]:
    bucket = f"claims-{uuid.uuid4().hex[:8]}"
    async with stack() as local:
        async with local.client("s3") as s3:
            await s3.create_bucket(Bucket=bucket)
        environment = {"CLAIM_BUCKET": bucket, "FANOUT_SECRET": SECRET}
        local.add_function(
            FunctionConfig(
                "claims",
                "claim_worker.lambda_handler",
                timeout=60,
                memory=1024,
                environment=environment,
                code_paths=[FUNCTIONS],
            )
        )
        local.bucket = bucket  # type: ignore[attr-defined]
        yield local


def claims_of(aws: LocalAws) -> ClaimCheck:
    bucket: str = aws.bucket  # type: ignore[attr-defined]
    return ClaimCheck(bucket=bucket, endpoint_url=aws.endpoint_url, session=aws.session)


async def objects(aws: LocalAws) -> list[str]:
    async with aws.client("s3") as s3:
        listing = await s3.list_objects_v2(Bucket=claims_of(aws).bucket)
    return [entry["Key"] for entry in listing.get("Contents", [])]


async def test_a_5_mb_item_and_a_3_mb_reply_go_through_s3_and_are_deleted(
    aws: LocalAws,
) -> None:
    queue_url = await aws.create_queue(f"claims-{uuid.uuid4().hex[:8]}", VisibilityTimeout="120")
    await aws.add_event_source(EventSourceMapping(queue_url, "claims", batch_size=10))
    target = SqsTarget(
        queue_url,
        task="digest",
        replies=True,
        secret=SECRET,
        claim_check=claims_of(aws),
        endpoint_url=aws.endpoint_url,
        region_name="us-east-1",
    )
    large, small = "L" * (5 * MB), "small"
    items = [Call(large, 3 * MB), Call(small)]
    result = await dispatch_many(target, items, concurrency=2, timeout=60)

    values = result.values()
    assert [v["size"] for v in values] == [5 * MB, len(small)]
    assert [v["sha256"] for v in values] == [sha(large), sha(small)]
    assert values[0]["padding"] == "r" * (3 * MB)
    assert values[1]["padding"] == ""
    assert target.reply_stats.received == 2
    assert await objects(aws) == []  # the worker took the item's, the sender the reply's


async def test_a_large_item_through_a_lambda_invoke(aws: LocalAws) -> None:
    target = LambdaTarget(
        "claims",
        task="digest",
        secret=SECRET,
        claim_check=claims_of(aws),
        endpoint_url=aws.lambda_endpoint_url,
        region_name="us-east-1",
    )
    large = "M" * (7 * MB)  # over the 6 MB RequestResponse limit
    result = await dispatch_many(target, [large], concurrency=1, timeout=60)
    assert result.values() == [{"size": 7 * MB, "sha256": sha(large), "padding": ""}]
    assert await objects(aws) == []


async def claimed_message(aws: LocalAws, blob: str) -> tuple[str, dict[str, Any]]:
    """Send one large item to a queue no worker reads; its message and the claim it names."""
    queue_url = await aws.create_queue(f"idle-{uuid.uuid4().hex[:8]}")
    target = SqsTarget(
        queue_url,
        task="digest",
        secret=SECRET,
        claim_check=claims_of(aws),
        endpoint_url=aws.endpoint_url,
        region_name="us-east-1",
    )
    result = await dispatch_many(target, [blob], concurrency=1)
    assert result.ok
    async with aws.client("sqs") as sqs:
        messages = (await sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5))["Messages"]
    body = messages[0]["Body"]
    return body, json.loads(body)["claim"]


def worker_app(aws: LocalAws) -> App:
    app = App("in-process", secret=SECRET, claim_check=claims_of(aws))

    @app.task
    async def digest(blob: str) -> int:
        return len(blob)

    return app


async def test_a_tampered_object_is_refused_under_a_secret(aws: LocalAws) -> None:
    body, claim = await claimed_message(aws, "A" * (2 * MB))
    assert await objects(aws) == [claim["key"]]
    forged = json.dumps({"args": ["B" * (2 * MB)], "kwargs": {}}, separators=(",", ":"))
    async with aws.client("s3") as s3:
        await s3.put_object(Bucket=claim["bucket"], Key=claim["key"], Body=forged.encode())

    result = await worker_app(aws).run_envelope(body)
    assert isinstance(result.error, ClaimRefused)
    assert result.reply.ok is False

    # Pointing the envelope at the forged object's digest breaks its signature instead.
    data = json.loads(body)
    data["claim"]["sha256"] = hashlib.sha256(forged.encode()).hexdigest()
    result = await worker_app(aws).run_envelope(json.dumps(data))
    assert isinstance(result.error, BadSignature)


async def test_an_untouched_object_runs_once_and_is_deleted(aws: LocalAws) -> None:
    body, claim = await claimed_message(aws, "C" * (2 * MB))
    app = worker_app(aws)
    result = await app.run_envelope(body)
    assert result.error is None
    assert result.reply.value == 2 * MB
    assert claim["key"] not in await objects(aws)
    again = await app.run_envelope(body)  # a second delivery finds the object gone
    assert isinstance(again.error, ClaimRefused)


async def test_without_a_claim_check_a_5_mb_item_is_too_large_and_never_sent(
    aws: LocalAws,
) -> None:
    queue_url = await aws.create_queue(f"plain-{uuid.uuid4().hex[:8]}")
    target = SqsTarget(
        queue_url, task="digest", endpoint_url=aws.endpoint_url, region_name="us-east-1"
    )
    result = await dispatch_many(target, ["L" * (5 * MB)], concurrency=1)
    [failure] = result.failures()
    assert failure.status is Status.FAILED
    assert isinstance(failure.error, PayloadTooLarge)
    async with aws.client("sqs") as sqs:
        attributes = await sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"


async def test_a_failed_task_nobody_waits_for_keeps_its_object_for_the_redelivery(
    aws: LocalAws,
) -> None:
    body, claim = await claimed_message(aws, "D" * (2 * MB))
    app = App("flaky", secret=SECRET, claim_check=claims_of(aws))
    runs: list[int] = []

    @app.task
    async def digest(blob: str) -> int:
        runs.append(len(blob))
        if len(runs) == 1:
            raise RuntimeError("a passing failure")
        return len(blob)

    first = await app.run_envelope(body)
    assert isinstance(first.error, RuntimeError)
    assert claim["key"] in await objects(aws)  # SQS delivers it again: the arguments must wait
    second = await app.run_envelope(body)
    assert second.error is None
    assert second.reply.value == 2 * MB
    assert claim["key"] not in await objects(aws)  # settled now: deleted
    assert runs == [2 * MB, 2 * MB]


async def test_a_reference_outside_the_claim_checks_bucket_and_prefix_is_never_read() -> None:
    from aiofanout.wire import ClaimRef

    claims = ClaimCheck(bucket="ours", endpoint_url="http://127.0.0.1:9")  # nothing listens
    digest = hashlib.sha256(b"x").hexdigest()
    for bucket, key in (("theirs", "aiofanout/claims/x"), ("ours", "payroll/2026.csv")):
        ref = ClaimRef(bucket=bucket, key=key, size=1, sha256=digest)
        with pytest.raises(ClaimRefused, match="outside"):
            await claims.read(ref)  # refused before any request is made


class CountingSession:
    """An aioboto3 session that counts the clients made of it, by service."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.made: Counter[str] = Counter()

    def client(self, service: str, **kwargs: Any) -> Any:
        self.made[service] += 1
        return self.session.client(service, **kwargs)


async def test_a_fan_out_of_claimed_items_stores_them_all_through_one_s3_client(
    aws: LocalAws,
) -> None:
    counting = CountingSession(aws.session)
    bucket: str = aws.bucket  # type: ignore[attr-defined]
    claims = ClaimCheck(bucket=bucket, endpoint_url=aws.endpoint_url, session=counting)
    queue_url = await aws.create_queue(f"idle-{uuid.uuid4().hex[:8]}")
    target = SqsTarget(
        queue_url, task="digest", claim_check=claims, endpoint_url=aws.endpoint_url,
        region_name="us-east-1",
    )  # fmt: skip
    blobs = [str(n) * (MB + 100_000) for n in range(6)]  # each over SQS's 1 MiB
    result = await dispatch_many(target, blobs, concurrency=3)
    assert result.ok
    assert len(await objects(aws)) >= 6
    assert counting.made == Counter(s3=1)  # one client for the fan-out, not one per object
    await dispatch_many(target, blobs[:2], concurrency=2)  # let go of after the first
    assert counting.made == Counter(s3=2)


async def test_a_worker_keeps_one_s3_client_for_its_claims_across_invocations(
    aws: LocalAws,
) -> None:
    bodies = [(await claimed_message(aws, str(n) * (2 * MB)))[0] for n in range(3)]
    counting = CountingSession(aws.session)
    bucket: str = aws.bucket  # type: ignore[attr-defined]
    claims = ClaimCheck(bucket=bucket, endpoint_url=aws.endpoint_url, session=counting)
    app = App("warm", secret=SECRET, claim_check=claims)

    @app.task
    async def digest(blob: str) -> int:
        return len(blob)

    def three_warm_invocations() -> list[Any]:
        try:  # Lambda's runtime calls the sync handler, the runner's loop kept between calls
            return [app.lambda_handler(json.loads(body), None) for body in bodies]
        finally:
            app.runner.close()

    replies = await asyncio.to_thread(three_warm_invocations)
    assert [reply["value"] for reply in replies] == [2 * MB] * 3
    assert counting.made == Counter(s3=1)
