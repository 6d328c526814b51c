"""Worker entry points: a direct invoke, a chunk of envelopes, an SQS batch; the sync adapter.

Lambda calls a sync function. :class:`LoopRunner` keeps one event loop per execution environment
and reuses it across warm invocations, so clients and connection pools created in one invocation
are still valid in the next (``asyncio.run`` per call would close the loop under them: "Event loop
is closed"). ``App(loop="fresh")`` picks ``asyncio.run`` per invocation instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from ._engine import dispatch_many
from ._errors import InvalidEnvelope, UsageError
from ._options import Deadline
from ._outcome import Status
from ._tasks import App, TaskResult
from ._wire import ReplyEnvelope, encode_reply, error_info

log = logging.getLogger("aiofanout.worker")
T = TypeVar("T")


class LoopRunner:
    """Runs a coroutine to completion from sync code, on one loop kept across calls."""

    def __init__(self, *, fresh: bool = False) -> None:
        self.fresh = fresh
        self.loop: asyncio.AbstractEventLoop | None = None
        self.resources = contextlib.AsyncExitStack()
        self.reply_client: Any = None

    def run(self, coro: Awaitable[T]) -> T:
        """Run ``coro`` and return its result (the sync entry point's body)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            if isinstance(coro, Coroutine):
                coro.close()
            raise UsageError(
                "lambda_handler was called from inside a running event loop: "
                "use `await app.handle(event, context)` there instead"
            )
        if self.fresh:
            return asyncio.run(self._fresh(coro))
        if self.loop is None or self.loop.is_closed():
            self.loop = asyncio.new_event_loop()
        return self.loop.run_until_complete(coro)

    async def _fresh(self, coro: Awaitable[T]) -> T:
        try:
            return await coro
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close what invocations opened on this loop (the reply client)."""
        await self.resources.aclose()
        self.resources = contextlib.AsyncExitStack()
        self.reply_client = None

    def close(self) -> None:
        """Close the resources and the loop (end of the execution environment, or tests)."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.run_until_complete(self.aclose())
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
        self.loop = None


def lambda_entrypoint(
    fn: Callable[[Any, Any], Awaitable[T]], *, loop: str = "reuse"
) -> Callable[[Any, Any], T]:
    """Turn ``async def handler(event, context)`` into the sync function Lambda calls.

    With ``loop="reuse"`` (the default) one event loop serves every warm invocation of the
    execution environment, so clients made in one invocation stay valid in the next.

    Example::

        @lambda_entrypoint
        async def handler(event, context):
            result = await dispatch_many(target, event["keys"], concurrency=50,
                                         deadline=Deadline.from_lambda_context(context))
            return {"ok": result.ok}
    """
    if loop not in ("reuse", "fresh"):
        raise UsageError(f"loop is 'reuse' or 'fresh', got {loop!r}")
    runner = LoopRunner(fresh=loop == "fresh")

    @functools.wraps(fn)
    def handler(event: Any, context: Any) -> T:
        return runner.run(fn(event, context))

    handler.runner = runner  # type: ignore[attr-defined]
    return handler


async def handle_event(app: App, event: Any, context: Any) -> Any:
    """Route a Lambda event: SQS batch, chunk of envelopes, or one envelope."""
    if is_sqs_event(event):
        return await handle_sqs_batch(app, event, context)
    if isinstance(event, list):
        return await handle_chunk(app, event)
    return await handle_direct(app, event)


def is_sqs_event(event: Any) -> bool:
    """Whether ``event`` is an SQS event source batch."""
    if not isinstance(event, dict):
        return False
    records = event.get("Records")
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)
    )


async def handle_direct(app: App, event: Any) -> dict[str, Any]:
    """One envelope: return the reply, or raise so Lambda reports a function error.

    Raising (rather than returning an error reply) is what gives ``Event`` invocations Lambda's
    own retries and on-failure destination. ``errorType`` is the exception's class name.
    """
    result = await app.run_envelope(_as_envelope(event))
    await send_reply_if_asked(app, result)
    if result.error is not None:
        raise result.error
    return result.reply.model_dump(mode="json", exclude_none=True)


async def handle_chunk(app: App, events: list[Any]) -> list[dict[str, Any]]:
    """A list of envelopes (a chunked fan-out): one reply each, in order; never raises."""
    results = await dispatch_many(
        functools.partial(_run_one, app), events, concurrency=app.concurrency, retry=1
    )
    replies = []
    for outcome in results:
        if outcome.ok:
            replies.append(outcome.value.reply.model_dump(mode="json", exclude_none=True))
        else:
            replies.append(_failed_reply(outcome.error).model_dump(mode="json", exclude_none=True))
    return replies


async def _run_one(app: App, event: Any) -> TaskResult:
    result = await app.run_envelope(_as_envelope(event))
    await send_reply_if_asked(app, result)
    return result


def _as_envelope(event: Any) -> dict[str, Any] | str | bytes:
    if isinstance(event, dict | str | bytes):
        return event
    raise InvalidEnvelope(f"a direct invoke carries a JSON object, got {type(event).__name__}")


def _failed_reply(error: BaseException | None) -> ReplyEnvelope:
    cause = error or TimeoutError("not run before the deadline")
    return ReplyEnvelope(id="?", ok=False, error=error_info(cause))


async def handle_sqs_batch(app: App, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run an SQS batch; report every record that did not succeed in ``batchItemFailures``.

    Records run concurrently under ``app.concurrency``; a FIFO batch runs in order and stops at
    the first failure (it and every later record are reported). Records not reached before the
    Lambda deadline less ``app.deadline_margin`` are reported too, so they come back later.
    """
    records: list[dict[str, Any]] = event["Records"]
    deadline = _deadline_of(context, app.deadline_margin)
    if records[0].get("eventSourceARN", "").endswith(".fifo"):
        failed = await _run_in_order(app, records, deadline)
    else:
        result = await dispatch_many(
            functools.partial(_run_record, app),
            records,
            concurrency=app.concurrency,
            deadline=deadline,
            retry=1,
        )
        failed = [records[o.index]["messageId"] for o in result if o.status is not Status.SUCCEEDED]
    if failed:
        log.warning("sqs batch of %d records: %d failed", len(records), len(failed))
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


async def _run_in_order(
    app: App, records: list[dict[str, Any]], deadline: Deadline | None
) -> list[str]:
    for position, record in enumerate(records):
        if deadline is not None and deadline.remaining() <= 0:
            return [r["messageId"] for r in records[position:]]
        try:
            async with asyncio.timeout_at(deadline.at if deadline else None):
                await _run_record(app, record)
        except Exception:
            return [r["messageId"] for r in records[position:]]
    return []


async def _run_record(app: App, record: dict[str, Any]) -> None:
    result = await app.run_envelope(record.get("body", ""))
    await send_reply_if_asked(app, result)
    if result.error is not None:
        raise result.error


def _deadline_of(context: Any, margin: float) -> Deadline | None:
    if context is None or not hasattr(context, "get_remaining_time_in_millis"):
        return None
    if context.get_remaining_time_in_millis() <= 0:
        # awslambdaric reports 0 when the runtime sent no deadline: treat as unknown.
        return None
    return Deadline.from_lambda_context(context, margin=margin)


async def send_reply_if_asked(app: App, result: TaskResult) -> None:
    """Send the reply envelope to the envelope's ``reply_to`` queue, if it named one."""
    envelope = result.envelope
    if envelope is None or not envelope.reply_to:
        return
    client = await _reply_client(app)
    body = encode_reply(result.reply).decode()
    try:
        await client.send_message(QueueUrl=envelope.reply_to, MessageBody=body)
    except Exception:
        log.exception("could not send the reply of task id=%s", envelope.id)
        raise


async def _reply_client(app: App) -> Any:
    runner = app.runner
    if runner.reply_client is None:
        try:
            import aioboto3
        except ImportError as exc:  # pragma: no cover - depends on the extras installed
            raise UsageError("replies to SQS need: pip install 'aiofanout[aws]'") from exc
        session = aioboto3.Session()
        runner.reply_client = await runner.resources.enter_async_context(session.client("sqs"))
    return runner.reply_client
