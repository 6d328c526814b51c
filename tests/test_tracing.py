"""OpenTelemetry traces: the fan-out's span, a span per attempt, the trace across the wire.

In-process with the SDK's in-memory exporter first; then across the local runtime's awslambdaric
processes, whose environments export their spans to files (``lambda_functions/traced_worker``):
one trace from the sender's fan-out span to the task's span inside the function, for
``RequestResponse``, ``Event`` with replies, SQS with replies and an SNS topic delivering to a
queue; the sender's receives of replies link to the worker's sends of them.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest
import pytest_asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once

from aiofanout import (
    LambdaTarget,
    PayloadLimits,
    SnsTarget,
    SqsTarget,
    Throttled,
    dispatch_many,
    stream,
)
from aiofanout.errors import BadSignature
from aiofanout.local import EventSourceMapping, FunctionConfig, LocalAws, stack
from aiofanout.targets import Target
from aiofanout.testing import LambdaContext, eventually, sqs_event
from aiofanout.wire import ReplyEnvelope, decode_reply, decode_task, encode_reply, encode_task
from aiofanout.worker import App

pytestmark = pytest.mark.asyncio(loop_scope="module")

FUNCTIONS = str(Path(__file__).with_name("lambda_functions"))
SECRET = "trace-test-secret"
ACCOUNT_ARN = "arn:aws:sqs:us-east-1:123456789012"  # the local stack's account


def _set_global_provider(provider: Any) -> None:
    # The API sets its global provider once per process; tests put it back (as OTel's own
    # test utilities do), so no other test of this worker process runs traced.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    if provider is not None:
        trace.set_tracer_provider(provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The SDK as the global tracer provider, its spans kept in memory; unset after."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _set_global_provider(provider)
    try:
        yield exporter
    finally:
        _set_global_provider(None)


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


# -- in-process ---------------------------------------------------------------------------------


async def test_a_fanout_span_holds_an_attempt_span_per_attempt_retries_their_own(
    spans: InMemorySpanExporter,
) -> None:
    tries: dict[int, int] = {}

    async def square(n: int) -> int:
        tries[n] = tries.get(n, 0) + 1
        if n == 2 and tries[n] == 1:
            raise Throttled("slow down")
        return n * n

    result = await dispatch_many(square, range(4), concurrency=2, retry=3, timeout=5)
    assert result.values() == [0, 1, 4, 9]
    [fanout] = named(spans, "aiofanout.dispatch_many")
    attempts = [s for s in spans.get_finished_spans() if s.name.endswith("<locals>.square")]
    assert len(attempts) == 5  # four items, one retried
    assert {parent_id(span) for span in attempts} == {fanout.context.span_id}
    assert {span.context.trace_id for span in attempts} == {fanout.context.trace_id}
    [throttled] = [span for span in attempts if span.status.status_code is StatusCode.ERROR]
    assert throttled.attributes is not None
    assert throttled.attributes["error.type"] == "Throttled"
    attributes = fanout.attributes or {}
    assert attributes["aiofanout.concurrency"] == 2
    assert attributes["aiofanout.timeout"] == 5
    assert attributes["aiofanout.retry.attempts"] == 3
    assert attributes["aiofanout.items.succeeded"] == 4
    assert attributes["aiofanout.items.failed"] == 0
    assert attributes["aiofanout.retries"] == 1
    assert attributes["aiofanout.throttles"] == 1


async def test_a_failed_item_ends_its_attempt_span_in_error_with_the_error_type(
    spans: InMemorySpanExporter,
) -> None:
    async def refuse(n: int) -> int:
        raise ValueError(f"{n} refused")

    async with stream(refuse, [1], concurrency=1, retry=1) as outcomes:
        [outcome] = [o async for o in outcomes]
    assert not outcome.ok
    [fanout] = named(spans, "aiofanout.stream")
    [attempt] = [s for s in spans.get_finished_spans() if s.name.startswith("call ")]
    assert attempt.status.status_code is StatusCode.ERROR
    assert attempt.attributes is not None
    assert attempt.attributes["error.type"] == "ValueError"
    assert (fanout.attributes or {})["aiofanout.items.failed"] == 1


class EnvelopeBodies(Target):
    """A target whose reply is the envelope it would send for the attempt (no network)."""

    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        return encode_task("work", [payload], {}, secret=SECRET)


async def test_each_attempt_signs_its_trace_context_into_the_envelope(
    spans: InMemorySpanExporter,
) -> None:
    result = await dispatch_many(EnvelopeBodies(), [1, 2], concurrency=2)
    attempts = {span.context.span_id: span for span in named(spans, "call EnvelopeBodies")}
    for body in result.values():
        envelope = decode_task(body, secret=SECRET)  # the signature covers the context
        assert envelope.traceparent is not None
        _, trace_id, span_id, _ = envelope.traceparent.split("-")
        assert int(span_id, 16) in attempts
        assert int(trace_id, 16) == attempts[int(span_id, 16)].context.trace_id
        tampered = body.replace(
            envelope.traceparent.encode(), b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"
        )
        with pytest.raises(BadSignature):
            decode_task(tampered, secret=SECRET)


async def test_without_a_tracer_provider_nothing_is_traced_or_carried() -> None:
    from aiofanout._tracing import fanout_tracing  # white box: asked once per fan-out

    described: list[str] = []

    def describe() -> Any:
        described.append("asked")
        return "x", "client", {}

    assert fanout_tracing(describe) is None
    assert described == []  # the target is not even asked for its description
    result = await dispatch_many(EnvelopeBodies(), [1], concurrency=1)
    assert b"traceparent" not in result.values()[0]


async def test_the_worker_spans_a_task_as_a_child_of_the_attempt_and_links_a_batch(
    spans: InMemorySpanExporter,
) -> None:
    worker = App("traced-in-process", secret=SECRET)

    @worker.task
    async def work(n: int) -> int:
        return n * n

    result = await dispatch_many(EnvelopeBodies(), [1, 2, 3], concurrency=3)
    event = sqs_event(result.values(), queue="work-queue")
    context = LambdaContext()
    assert await worker.handle(event, context) == {"batchItemFailures": []}
    attempts = {span.context.span_id for span in named(spans, "call EnvelopeBodies")}
    tasks = named(spans, "work")
    assert len(tasks) == 3
    assert {parent_id(span) for span in tasks} == attempts
    message_ids = {record["messageId"] for record in event["Records"]}
    assert {(s.attributes or {})["messaging.message.id"] for s in tasks} == message_ids
    assert {(s.attributes or {})["faas.invocation_id"] for s in tasks} == {context.aws_request_id}
    assert {s.kind for s in tasks} == {SpanKind.CONSUMER}
    [batch] = named(spans, "process work-queue")
    assert {link.context.span_id for link in batch.links} == attempts
    assert (batch.attributes or {})["messaging.batch.message_count"] == 3


async def test_the_targets_describe_their_attempts_by_the_semantic_conventions() -> None:
    name, kind, attributes = LambdaTarget(
        "thumbs", task="t", region_name="eu-west-1"
    ).span_description()
    assert (name, kind) == ("thumbs", "client")
    assert attributes["faas.invoked_name"] == "thumbs"
    assert attributes["faas.invoked_provider"] == "aws"
    assert attributes["faas.invoked_region"] == "eu-west-1"
    queue = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs"
    name, kind, attributes = SqsTarget(queue, task="t").span_description()
    assert (name, kind) == ("send jobs", "producer")
    assert attributes["messaging.system"] == "aws_sqs"
    assert attributes["messaging.destination.name"] == "jobs"
    assert attributes["messaging.operation.type"] == "send"
    assert attributes["messaging.operation.name"] == "SendMessageBatch"
    topic = "arn:aws:sns:eu-west-1:123456789012:events"
    name, kind, attributes = SnsTarget(topic, task="t", region_name="eu-west-1").span_description()
    assert (name, kind) == ("send events", "producer")
    assert attributes["messaging.system"] == "aws_sns"
    assert attributes["messaging.destination.name"] == "events"
    assert attributes["messaging.operation.name"] == "PublishBatch"


async def test_without_opentelemetry_the_library_imports_and_runs_untraced() -> None:
    script = """
import asyncio, sys
sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
import aiofanout, aiofanout.worker, aiofanout.targets
from aiofanout import _tracing

async def double(n):
    return 2 * n

result = asyncio.run(aiofanout.dispatch_many(double, range(3), concurrency=2))
assert result.values() == [0, 2, 4]
assert not _tracing.AVAILABLE and not _tracing.tracing_on()
loaded = [m for m in sys.modules if m.startswith("opentelemetry") and sys.modules[m] is not None]
print("loaded:", loaded)
"""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=PIPE, stderr=PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == "loaded: []"


REPLY_QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/aiofanout-replies-x"


def traced_replies(*values: int) -> tuple[list[str], list[int]]:
    """Reply bodies as a traced worker sends them, and the span ids of their sends."""
    from aiofanout._tracing import reply_span  # white box: the worker's reply send
    from aiofanout._wire import sign_reply
    from aiofanout.worker._reply_sender import reply_body
    from aiofanout.worker._task_result import TaskResult

    bodies, sends = [], []
    for value in values:
        envelope = decode_task(encode_task("work", [value], {}, reply_to=REPLY_QUEUE))
        reply = sign_reply(ReplyEnvelope(id=envelope.id, ok=True, value=value), SECRET)
        with reply_span(REPLY_QUEUE, [envelope]) as fields:
            bodies.append(
                reply_body(TaskResult(reply, None, envelope), secret=SECRET, trace=fields)
            )
            sends.append(trace.get_current_span().get_span_context().span_id)
    return bodies, sends


async def test_a_receive_that_brought_replies_is_a_client_span_linking_each_replys_send(
    spans: InMemorySpanExporter,
) -> None:
    from aiofanout._tracing import receive_span, receive_started  # white box: one poll

    bodies, sends = traced_replies(4, 9)
    for body in bodies:  # each reply carries its send's context, signed
        reply = decode_reply(body, secret=SECRET)
        assert reply.traceparent is not None
        tampered = body.replace(reply.traceparent, "00-" + "1" * 32 + "-" + "2" * 16 + "-01")
        with pytest.raises(BadSignature):
            decode_reply(tampered, secret=SECRET)
    asked: list[str] = []

    def bodies_of_poll() -> list[str]:
        asked.append("asked")
        return [*bodies, "not json"]

    receive_span(REPLY_QUEUE, receive_started(), 0, bodies_of_poll)  # an empty long poll
    assert named(spans, "receive aiofanout-replies-x") == []
    assert asked == []
    receive_span(REPLY_QUEUE, receive_started(), 3, bodies_of_poll)
    [receive] = named(spans, "receive aiofanout-replies-x")
    assert receive.kind is SpanKind.CLIENT
    assert receive.parent is None  # a root: the queue's receivers serve every fan-out on it
    assert [link.context.span_id for link in receive.links] == sends
    attributes = receive.attributes or {}
    assert attributes["messaging.system"] == "aws_sqs"
    assert attributes["messaging.operation.type"] == "receive"
    assert attributes["messaging.operation.name"] == "ReceiveMessage"
    assert attributes["messaging.destination.name"] == "aiofanout-replies-x"
    assert attributes["messaging.batch.message_count"] == 3


async def test_without_a_tracer_provider_no_receive_span_and_no_context_in_replies() -> None:
    from aiofanout._tracing import receive_span, receive_started

    def bodies() -> list[str]:
        raise AssertionError("an untraced receive reads no body for its links")

    assert receive_started() is None
    receive_span(REPLY_QUEUE, receive_started(), 10, bodies)
    [body], _ = traced_replies(1)
    assert decode_reply(body, secret=SECRET).traceparent is None


async def test_a_reply_near_the_sqs_limit_is_sent_without_its_context_rather_than_refused(
    spans: InMemorySpanExporter,
) -> None:
    from aiofanout._tracing import reply_span
    from aiofanout._wire import sign_reply
    from aiofanout.worker._reply_sender import reply_body
    from aiofanout.worker._task_result import TaskResult

    envelope = decode_task(encode_task("work", [1], {}, reply_to=REPLY_QUEUE))
    reply = sign_reply(ReplyEnvelope(id=envelope.id, ok=True, value="x" * 100), SECRET)
    limits = PayloadLimits(sqs_message=len(encode_reply(reply)) + 20)  # no room for 55 more
    with reply_span(REPLY_QUEUE, [envelope]) as fields:
        assert fields
        body = reply_body(TaskResult(reply, None, envelope), limits, secret=SECRET, trace=fields)
    sent = decode_reply(body, secret=SECRET)
    assert (sent.ok, sent.value, sent.traceparent) == (True, "x" * 100, None)


# -- across the local runtime's processes -----------------------------------------------------


@pytest.fixture(scope="module")
def traces_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("traces")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def aws(traces_dir: Path) -> AsyncIterator[LocalAws]:
    environment = {"TRACES_DIR": str(traces_dir), "FANOUT_SECRET": SECRET}
    async with stack() as local:
        local.add_function(
            FunctionConfig(
                "traced",
                "traced_worker.lambda_handler",
                timeout=30,
                code_paths=[FUNCTIONS],
                environment=environment,
            )
        )
        yield local


def exported(traces_dir: Path) -> list[dict[str, Any]]:
    """Every span the function's environments exported so far."""
    lines = [line for path in traces_dir.glob("*.jsonl") for line in path.read_text().splitlines()]
    return [json.loads(line) for line in lines if line.strip()]


def reply_sends_answering(traces_dir: Path, attempts: list[ReadableSpan]) -> set[str]:
    """The attempts (span ids) whose replies the worker's ``send`` spans answered."""
    ids = {f"0x{span.context.span_id:016x}" for span in attempts}
    answered: set[str] = set()
    for span in exported(traces_dir):
        if span["name"].startswith("send ") and span["kind"] == "SpanKind.PRODUCER":
            answered |= {span.get("parent_id") or ""} | {
                link["context"]["span_id"] for link in span["links"]
            }
    return answered & ids


def task_spans_under(traces_dir: Path, attempts: list[ReadableSpan]) -> list[dict[str, Any]]:
    """The worker's ``work`` spans whose parent is one of ``attempts``, in their trace."""
    by_id = {f"0x{span.context.span_id:016x}": span for span in attempts}
    found = []
    for span in exported(traces_dir):
        attempt = by_id.get(span.get("parent_id") or "")
        if span["name"] == "work" and attempt is not None:
            assert span["context"]["trace_id"] == f"0x{attempt.context.trace_id:032x}"
            found.append(span)
    return found


def batches_link(
    traces_dir: Path, queue: str, attempts: list[ReadableSpan], *, messages: int
) -> bool:
    """Whether the worker's ``process <queue>`` spans link ``messages`` sent in ``attempts``."""
    sent_from = {f"0x{attempt.context.span_id:016x}" for attempt in attempts}
    batches = [s for s in exported(traces_dir) if s["name"] == f"process {queue}"]
    links = [link["context"]["span_id"] for s in batches for link in s["links"]]
    return len(links) == messages and set(links) == sent_from


async def receives_link_the_reply_sends(
    spans: InMemorySpanExporter, traces_dir: Path, target: Any, *, replies: int
) -> None:
    """The sender's receives of ``replies`` replies link to the worker's sends of them."""
    queue = target.fanin.last_url.rsplit("/", 1)[-1]
    receives = named(spans, f"receive {queue}")
    counts = [(s.attributes or {})["messaging.batch.message_count"] for s in receives]
    assert sum(int(str(count)) for count in counts) == replies
    assert {s.kind for s in receives} == {SpanKind.CLIENT}
    assert all(s.parent is None for s in receives)  # not a child of the fan-out that opened it
    linked = {f"0x{link.context.span_id:016x}" for s in receives for link in s.links}

    def reply_sends() -> set[str]:
        found = [s for s in exported(traces_dir) if s["name"] == f"send {queue}"]
        return {s["context"]["span_id"] for s in found}

    # The worker's span of a reply's send ends once SQS answered it: maybe after the sender.
    await eventually(lambda: reply_sends() == linked, timeout=10)
    assert linked


@pytest.mark.slow
async def test_one_trace_from_the_fanout_to_the_task_inside_the_function_request_response(
    aws: LocalAws, traces_dir: Path, spans: InMemorySpanExporter
) -> None:
    target = LambdaTarget(
        "traced",
        task="work",
        secret=SECRET,
        endpoint_url=aws.lambda_endpoint_url,
        region_name="us-east-1",
    )
    result = await dispatch_many(target, [1, 2, 3], concurrency=3, timeout=20)
    assert result.values() == [1, 4, 9]
    [fanout] = named(spans, "aiofanout.dispatch_many")
    attempts = named(spans, "traced")
    assert len(attempts) == 3
    assert {parent_id(span) for span in attempts} == {fanout.context.span_id}
    assert {s.kind for s in attempts} == {SpanKind.CLIENT}
    assert {(s.attributes or {})["faas.invoked_region"] for s in attempts} == {"us-east-1"}
    tasks = task_spans_under(traces_dir, attempts)
    assert len(tasks) == 3
    assert {t["attributes"]["aiofanout.envelope_id"] for t in tasks} == {
        o.envelope_id for o in result
    }
    assert all(t["attributes"]["faas.invocation_id"] for t in tasks)


@pytest.mark.slow
async def test_one_trace_across_chunks_each_envelope_a_child_of_its_chunks_attempt(
    aws: LocalAws, traces_dir: Path, spans: InMemorySpanExporter
) -> None:
    target = LambdaTarget(
        "traced",
        task="work",
        secret=SECRET,
        chunk_size=2,
        endpoint_url=aws.lambda_endpoint_url,
        region_name="us-east-1",
    )
    result = await dispatch_many(target, [1, 2, 3, 4], concurrency=2, timeout=20)
    assert result.values() == [1, 4, 9, 16]
    attempts = named(spans, "traced")
    assert [(s.attributes or {})["aiofanout.batch.size"] for s in attempts] == [2, 2]
    tasks = task_spans_under(traces_dir, attempts)
    assert sorted(t["parent_id"] for t in tasks) == sorted(
        2 * [f"0x{span.context.span_id:016x}" for span in attempts]
    )


@pytest.mark.slow
async def test_one_trace_across_an_event_invoke_and_its_reply(
    aws: LocalAws, traces_dir: Path, spans: InMemorySpanExporter
) -> None:
    target = LambdaTarget(
        "traced",
        task="work",
        secret=SECRET,
        invocation_type="Event",
        replies=True,
        endpoint_url=aws.lambda_endpoint_url,
        sqs_endpoint_url=aws.endpoint_url,
        region_name="us-east-1",
    )
    result = await dispatch_many(target, [4, -1], concurrency=2, timeout=20, retry=1)
    assert result[0].value == 16
    assert not result[1].ok
    attempts = named(spans, "traced")
    [failed_attempt] = [s for s in attempts if s.status.status_code is StatusCode.ERROR]
    assert (failed_attempt.attributes or {})["error.type"] == "TaskFailed"
    tasks = task_spans_under(traces_dir, attempts)
    assert len(tasks) == 2
    [failed_task] = [t for t in tasks if t["status"]["status_code"] == "ERROR"]
    assert failed_task["attributes"]["error.type"] == "ValueError"
    assert "negative" not in json.dumps(failed_task)  # the task's message is not in its span
    every_attempt = {f"0x{span.context.span_id:016x}" for span in attempts}
    # The worker's span of a reply's send ends once SQS answered it: maybe after the sender.
    await eventually(lambda: reply_sends_answering(traces_dir, attempts) == every_attempt)
    await receives_link_the_reply_sends(spans, traces_dir, target, replies=2)


@pytest.mark.slow
async def test_one_trace_across_sqs_and_its_replies_the_batch_linked(
    aws: LocalAws, traces_dir: Path, spans: InMemorySpanExporter
) -> None:
    queue_url = await aws.create_queue(f"traced-{uuid.uuid4().hex[:8]}", VisibilityTimeout="60")
    await aws.add_event_source(EventSourceMapping(queue_url, "traced", batch_size=10))
    target = SqsTarget(
        queue_url,
        task="work",
        secret=SECRET,
        replies=True,
        endpoint_url=aws.endpoint_url,
        region_name="us-east-1",
    )
    result = await dispatch_many(target, [5, 6, 7], concurrency=1, timeout=20)
    assert result.values() == [25, 36, 49]
    queue = queue_url.rsplit("/", 1)[-1]
    attempts = named(spans, f"send {queue}")
    for attempt in attempts:
        attributes = attempt.attributes or {}
        assert attributes["messaging.system"] == "aws_sqs"
        assert attributes["messaging.destination.name"] == queue
    assert len(attempts) == 3  # with replies, an attempt sends one message (no batch count)
    tasks = task_spans_under(traces_dir, attempts)
    assert len(tasks) == 3
    assert all(t["attributes"]["messaging.message.id"] for t in tasks)
    sent_from = {f"0x{attempt.context.span_id:016x}" for attempt in attempts}
    await eventually(lambda: batches_link(traces_dir, queue, attempts, messages=3), timeout=10)
    assert reply_sends_answering(traces_dir, attempts) == sent_from  # the replies' sends


@pytest.mark.slow
async def test_one_trace_through_an_sns_topic_to_a_queues_worker_and_the_replies_received(
    aws: LocalAws, traces_dir: Path, spans: InMemorySpanExporter
) -> None:
    name = f"traced-{uuid.uuid4().hex[:8]}"
    queue_url = await aws.create_queue(name, VisibilityTimeout="60")
    async with aws.client("sns") as sns:
        topic = (await sns.create_topic(Name=name))["TopicArn"]
        # Not raw: the worker gets the SNS notification and runs the envelope inside it.
        await sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=f"{ACCOUNT_ARN}:{name}")
    await aws.add_event_source(EventSourceMapping(queue_url, "traced", batch_size=10))
    target = SnsTarget(
        topic,
        task="work",
        secret=SECRET,
        replies=True,
        endpoint_url=aws.endpoint_url,
        region_name="us-east-1",
    )
    result = await dispatch_many(target, [2, 3, 4], concurrency=3, timeout=20)
    assert result.values() == [4, 9, 16]
    [fanout] = named(spans, "aiofanout.dispatch_many")
    attempts = named(spans, f"send {name}")
    assert attempts
    assert {parent_id(span) for span in attempts} == {fanout.context.span_id}
    assert {s.kind for s in attempts} == {SpanKind.PRODUCER}
    assert {(s.attributes or {})["messaging.system"] for s in attempts} == {"aws_sns"}
    tasks = task_spans_under(traces_dir, attempts)  # each in the fan-out's trace
    assert sorted(t["attributes"]["aiofanout.envelope_id"] for t in tasks) == sorted(
        str(o.envelope_id) for o in result
    )
    assert all(t["attributes"]["messaging.message.id"] for t in tasks)  # through the queue
    # The worker's batch span links each message's context, through the notifications.
    await eventually(lambda: batches_link(traces_dir, name, attempts, messages=3), timeout=10)
    await receives_link_the_reply_sends(spans, traces_dir, target, replies=3)
