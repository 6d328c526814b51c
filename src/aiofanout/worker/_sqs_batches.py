"""An SQS event source batch: run its records, report the ones that did not succeed.

The answer is a partial batch response, ``{"batchItemFailures": [{"itemIdentifier": id}]}``:
SQS deletes the records not named and delivers the named ones again. So every record must be
reportable by its ``messageId`` before any record runs. An event this worker cannot answer that
way (a record with no ``messageId``, or records from another source beside the SQS ones) is
refused whole with :class:`InvalidEnvelope` before anything runs: Lambda reports a function
error, the event source delivers the whole batch again (or moves it to the dead-letter queue
after ``maxReceiveCount``), and no record has run once already.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from .._engine import dispatch_many
from .._errors import InvalidEnvelope
from .._log_fields import bound, library_logger
from .._options import Deadline
from .._outcome import Status
from .._tracing import sqs_batch_span
from ._reply_sender import send_replies
from ._settlement import Settlement, settlement
from ._sns_messages import unwrapped_body

if TYPE_CHECKING:
    from ._envelope_runner import EnvelopeRunner
    from ._task_result import TaskResult

log = library_logger("aiofanout.worker")

SQS_SOURCE = "aws:sqs"
_FROM_SQS = f"from {SQS_SOURCE}"


def is_event_source_batch(event: Any) -> bool:
    """Whether ``event`` is an event source batch (``{"Records": [...]}``), never an envelope."""
    return isinstance(event, dict) and isinstance(event.get("Records"), list)


def checked_sqs_records(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of an SQS batch, or :class:`InvalidEnvelope` if any cannot be answered for."""
    records: list[Any] = event["Records"]
    sources = Counter(_source_of(record) for record in records)
    if set(sources) - {_FROM_SQS}:
        counts = ", ".join(f"{n} {source}" for source, n in sorted(sources.items()))
        raise InvalidEnvelope(
            f"refused an event of {len(records)} records ({counts}) before running any: "
            f"an App answers SQS batches (every record from {SQS_SOURCE}), direct invokes "
            "and chunks of envelopes; send other sources' events to another handler"
        )
    for position, record in enumerate(records):
        message_id = record.get("messageId")
        if not isinstance(message_id, str) or not message_id:
            raise InvalidEnvelope(
                f"SQS record {position} of {len(records)} has no messageId, so it could not be "
                "reported in batchItemFailures; refused the whole batch, nothing ran (SQS "
                "delivers the batch again, then to its dead-letter queue)"
            )
    return records


def _source_of(record: Any) -> str:
    if not isinstance(record, dict):
        return f"not an object ({type(record).__name__})"
    source = record.get("eventSource", record.get("EventSource"))  # SNS spells it EventSource
    return f"from {source}" if isinstance(source, str) else "with no eventSource"


async def handle_sqs_batch(
    app: EnvelopeRunner, event: dict[str, Any], context: Any
) -> dict[str, Any]:
    """Run an SQS batch; report every record that did not succeed in ``batchItemFailures``.

    Records run concurrently under ``app.concurrency``; a FIFO batch runs in order and stops at
    the first failure (it and every later record are reported). Records not reached before the
    Lambda deadline less ``app.deadline_margin`` are reported too, so they come back later.
    The replies of records whose envelope names ``reply_to`` go out together once the batch has
    run (``SendMessageBatch``, grouped by queue); a record whose reply could not be sent is
    reported too, so it runs again and its reply is sent again.
    """
    records = checked_sqs_records(event)
    deadline = _deadline_of(context, app.deadline_margin)
    results: dict[str, TaskResult] = {}
    run = functools.partial(_run_record, app, results)
    queue = _queue_of(records)
    bodies = functools.partial(_bodies, records)  # read only when the batch is traced
    with sqs_batch_span(queue, len(records), bodies):
        if queue.endswith(".fifo"):
            failed = await _run_in_order(run, records, deadline)
        else:
            failed = await _run_concurrently(app, run, records, deadline)
        unsent = await send_replies(app.runner, list(results.items()), secret=app.secret)
    failed += [message_id for message_id in unsent if message_id not in failed]
    if failed:
        log.warning("sqs batch of %d records: %d failed", len(records), len(failed))
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


RunRecord: TypeAlias = Callable[[dict[str, Any]], Awaitable[None]]


async def _run_concurrently(
    app: EnvelopeRunner, run: RunRecord, records: list[dict[str, Any]], deadline: Deadline | None
) -> list[str]:
    result = await dispatch_many(
        run, records, concurrency=app.concurrency, deadline=deadline, retry=1
    )
    return [records[o.index]["messageId"] for o in result if o.status is not Status.SUCCEEDED]


async def _run_in_order(
    run: RunRecord, records: list[dict[str, Any]], deadline: Deadline | None
) -> list[str]:
    for position, record in enumerate(records):
        if deadline is not None and deadline.remaining() <= 0:
            return [r["messageId"] for r in records[position:]]
        try:
            async with asyncio.timeout_at(deadline.at if deadline else None):
                await run(record)
        except Exception:
            return [r["messageId"] for r in records[position:]]
    return []


async def _run_record(
    app: EnvelopeRunner, results: dict[str, TaskResult], record: dict[str, Any]
) -> None:
    # A queue subscribed to an SNS topic without raw delivery holds SNS's notifications.
    with bound(message_id=record["messageId"], attempt=_delivery(record)):
        body = unwrapped_body(record.get("body", ""))
        result = await app.run_envelope(body, message_id=record["messageId"])
    results[record["messageId"]] = result  # its reply is sent with the batch's
    if settlement(result) is Settlement.AGAIN:  # reported: SQS delivers it again, then the DLQ
        assert result.error is not None
        raise result.error


def _bodies(records: list[dict[str, Any]]) -> list[str]:
    return [unwrapped_body(str(record.get("body", ""))) for record in records]


def _queue_of(records: list[dict[str, Any]]) -> str:
    """The name of the queue a batch came from (its records' ``eventSourceARN`` ends with it)."""
    arn = records[0].get("eventSourceARN", "") if records else ""
    return str(arn).rsplit(":", 1)[-1]


def _delivery(record: dict[str, Any]) -> int | None:
    """Which delivery of its message a record is (SQS's ``ApproximateReceiveCount``)."""
    count = record.get("attributes", {}).get("ApproximateReceiveCount")
    return int(count) if isinstance(count, str) and count.isdigit() else None


def _deadline_of(context: Any, margin: float) -> Deadline | None:
    if context is None or not hasattr(context, "get_remaining_time_in_millis"):
        return None
    if context.get_remaining_time_in_millis() <= 0:
        # awslambdaric reports 0 when the runtime sent no deadline: treat as unknown.
        return None
    return Deadline.from_lambda_context(context, margin=margin)
