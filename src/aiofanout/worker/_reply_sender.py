"""Replies to ``reply_to``: an envelope that names a queue gets its reply sent there.

The replies of one SQS batch go out together: grouped by queue, in ``SendMessageBatch`` calls of
at most 10 entries and the batch byte limit, not one call per record. A reply over the SQS
message limit is never dropped silently: with the app's claim check it goes through S3 (the
reply names the object), without one the item gets an error reply naming the limit instead.

The SQS client is made once per loop and kept on the :class:`LoopRunner`, so warm invocations
reuse its connections; the runner closes it with the loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._aws import CONNECT_TIMEOUT, aws_session
from .._errors import ClaimRefused, Expired, PayloadTooLarge
from .._lean_aws import lean_client, lean_path_on
from .._limits import PayloadLimits
from .._log_fields import library_logger
from .._target import Batching
from .._tracing import reply_span
from .._wire import (
    ClaimCheck,
    ClaimRef,
    ReplyEnvelope,
    TaskEnvelope,
    encode_reply,
    error_info,
    join_task,
    sign_reply,
)
from ._runner import LoopRunner
from ._settlement import Settlement
from ._task_result import TaskResult

log = library_logger("aiofanout.worker")

LIMITS = PayloadLimits()


async def claimed_envelope(
    claim_check: ClaimCheck | None, envelope: TaskEnvelope, app_name: str
) -> TaskEnvelope:
    """The envelope with its arguments fetched from S3, checked.

    The object stays until the record is settled, so a redelivery can still run (see
    :func:`settle_claim`).
    """
    if envelope.claim is None or claim_check is None:
        raise ClaimRefused(
            f"the envelope's arguments wait in S3, and app {app_name!r} has no claim check: "
            "App(..., claim_check=ClaimCheck(bucket=...))"
        )
    return join_task(envelope, await claim_check.read(envelope.claim))


async def settle_claim(
    claim_check: ClaimCheck | None, claim: ClaimRef | None, settled: Settlement
) -> None:
    """Delete a claimed object once its message is done (see ``_settlement.py``).

    An envelope to be delivered again keeps it: SQS or Lambda brings the message back, or on to
    its dead-letter queue or on-failure destination, with its arguments still there (what is
    never delivered again, the bucket's lifecycle rule clears).
    """
    if claim is None or claim_check is None or not claim_check.owns(claim):
        return  # never touch an object outside the bucket and prefix, refused or not
    if settled is Settlement.DONE:
        try:
            await claim_check.forget(claim)
        except Exception:
            log.exception("could not delete claimed object s3://%s/%s", claim.bucket, claim.key)


async def reply_within_limit(
    claim_check: ClaimCheck,
    reply: ReplyEnvelope,
    limits: PayloadLimits = LIMITS,
    *,
    secret: str | bytes | None = None,
) -> ReplyEnvelope:
    """A reply over the SQS message limit, stored in S3 and sent as a reference.

    Its size is measured signed, as it is sent; the reference is signed by the caller, and its
    digest covers the stored reply.
    """
    body = encode_reply(sign_reply(reply, secret))
    if len(body) <= limits.sqs_message:
        return reply
    return await claim_check.store_reply(reply, body)


def reply_body(
    result: TaskResult,
    limits: PayloadLimits = LIMITS,
    *,
    secret: str | bytes | None = None,
    trace: Mapping[str, str] | None = None,
) -> str:
    """The reply's wire text, or an error reply when it is over the SQS message limit.

    The error reply is signed with ``secret`` (the reply itself was signed when it was made).
    ``trace``: the W3C context of the span sending it (:func:`reply_span`), signed into the
    reply unless that would take it over the limit (the context is worth less than the reply).
    """
    if trace:
        traced = encode_reply(sign_reply(result.reply.model_copy(update=trace), secret))
        if len(traced) <= limits.sqs_message:
            return traced.decode()
    body = encode_reply(result.reply)
    if len(body) <= limits.sqs_message:
        return body.decode()
    error = PayloadTooLarge(
        f"the reply is {len(body):,} bytes, over the {limits.sqs_message:,}-byte SQS message "
        "limit (PayloadLimits.sqs_message): return a reference (an S3 key) instead"
    )
    log.error("reply of task id=%s not sent: %s", result.reply.id, error.message)
    refusal = ReplyEnvelope(id=result.reply.id, ok=False, error=error_info(error))
    return encode_reply(sign_reply(refusal, secret)).decode()


async def send_reply_if_asked(
    runner: LoopRunner, result: TaskResult, *, secret: str | bytes | None = None
) -> None:
    """Send the reply envelope to the envelope's ``reply_to`` queue, if it named one."""
    queue_url = reply_queue(result)
    if queue_url is None:
        return
    client = await _reply_client(runner)
    try:
        with reply_span(queue_url, [result.envelope]) as trace:
            body = reply_body(result, secret=secret, trace=trace)
            await client.send_message(QueueUrl=queue_url, MessageBody=body)
    except Exception:
        log.exception("could not send the reply of task id=%s", result.reply.id)
        raise


def reply_queue(result: TaskResult) -> str | None:
    """Where the reply of ``result`` goes: its ``reply_to``, unless nobody waits for it.

    The sender of an expired envelope stopped waiting (and its reply queue may be gone), so an
    expired envelope gets no reply.
    """
    envelope = result.envelope
    if envelope is None or not envelope.reply_to or isinstance(result.error, Expired):
        return None
    return envelope.reply_to


async def send_replies(
    runner: LoopRunner,
    results: Sequence[tuple[str, TaskResult]],
    limits: PayloadLimits = LIMITS,
    *,
    secret: str | bytes | None = None,
) -> set[str]:
    """Send the replies of several results (keyed, e.g. by ``messageId``) in batches.

    Returns the keys whose reply could not be sent (the caller reports them as failed, so the
    task's message comes back and its reply is sent again).
    """
    by_queue: dict[str, list[tuple[str, TaskResult]]] = {}
    for key, result in results:
        queue_url = reply_queue(result)
        if queue_url is not None and result.envelope is not None:
            by_queue.setdefault(queue_url, []).append((key, result))
    if not by_queue:
        return set()
    try:
        client = await _reply_client(runner)
    except Exception:
        # Every record already ran: report only those awaiting a reply, not the whole batch.
        log.exception("no SQS client for the replies of this batch")
        return {key for replies in by_queue.values() for key, _ in replies}
    unsent: set[str] = set()
    batching = Batching(limits.sqs_batch_entries, limits.sqs_batch)
    for queue_url, answered in by_queue.items():
        envelopes = [result.envelope for _, result in answered]
        with reply_span(queue_url, envelopes) as trace:
            replies = [
                (key, reply_body(result, limits, secret=secret, trace=trace))
                for key, result in answered
            ]
            for chunk in batching.split(replies, lambda reply: len(reply[1].encode())):
                unsent |= await _send_chunk(client, queue_url, chunk)
    return unsent


async def _send_chunk(client: Any, queue_url: str, chunk: list[tuple[str, str]]) -> set[str]:
    entries = [{"Id": str(i), "MessageBody": body} for i, (_, body) in enumerate(chunk)]
    try:
        response = await client.send_message_batch(QueueUrl=queue_url, Entries=entries)
    except Exception:
        log.exception("could not send %d replies to %s", len(chunk), queue_url)
        return {key for key, _ in chunk}
    failed = {chunk[int(entry["Id"])][0] for entry in response.get("Failed", [])}
    if failed:
        log.error("%d of %d replies to %s were refused", len(failed), len(chunk), queue_url)
    return failed


#: Reply sends in flight at once from one execution environment (a batch's replies, by queue).
REPLY_POOL = 10
REPLY_READ_TIMEOUT = 60.0  # botocore's default


async def _reply_client(runner: LoopRunner) -> Any:
    """The loop's SQS client for replies: the lean path's unless it is switched off."""
    if runner.reply_client is None:
        if lean_path_on("sqs"):
            client = await lean_client(
                "sqs",
                endpoint_url=None,
                region_name=None,
                pool=REPLY_POOL,
                read_timeout=REPLY_READ_TIMEOUT,
                connect_timeout=CONNECT_TIMEOUT,
            )
        else:
            client = aws_session(None, "replies to SQS").client("sqs")
        runner.reply_client = await runner.resources.enter_async_context(client)
    return runner.reply_client
