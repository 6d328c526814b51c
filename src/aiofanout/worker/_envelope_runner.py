"""The runner of envelopes: decode, check, claim, run, reply and settle one envelope.

At the bottom of the worker, its configuration explicit (:class:`RunnerConfig`): the event
handlers (a direct invoke, a chunk, an SQS batch) hand it each envelope, and ``App`` is a
facade that registers tasks into its registry and routes Lambda's events to it. A message
names a task; the name is looked up in the registry and nothing else: nothing is imported,
``exec``'d or unpickled, so a message naming ``os.system`` gets :class:`UnknownTask` like any
other unknown name.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from pydantic import ValidationError

from .._errors import DepthExceeded, EnvelopeError, Expired, TaskTimedOut, UnknownTask, UsageError
from .._log_fields import bound as log_fields
from .._log_fields import library_logger
from .._tracing import task_span
from .._wire import (
    ClaimCheck,
    ReplyEnvelope,
    TaskEnvelope,
    current_deadline_ms,
    current_depth,
    decode_task,
    error_info,
    now_ms,
    sign_reply,
)
from ._idempotency import DEFAULT_IN_PROGRESS, IdempotencyStore, run_once
from ._reply_sender import claimed_envelope, reply_within_limit, settle_claim
from ._runner import LoopRunner
from ._settlement import settlement
from ._task import Bound, Task
from ._task_records import TaskRecords
from ._task_result import TaskResult

__all__ = ["INVOCATION_ENDS_MS", "EnvelopeRunner", "RunnerConfig", "run_time_left"]

#: When the Lambda invocation being handled ends (epoch ms), for idempotency claims: a run cut
#: off there must not hold its key any longer.
INVOCATION_ENDS_MS: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "aiofanout_invocation_ends_ms", default=None
)

log = library_logger("aiofanout.worker")


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """How envelopes are run: everything an ``App`` was given (see its docstring), checked."""

    name: str
    secret: str | bytes | None
    max_depth: int
    concurrency: int
    deadline_margin: float
    idempotency: IdempotencyStore | None
    claim_check: ClaimCheck | None
    max_age: float | None
    records: TaskRecords | None = None


class EnvelopeRunner:
    """Runs envelopes against a registry of tasks, on a :class:`LoopRunner`'s loop.

    ``tasks`` is the registry (the app's dict, which registration fills); ``runner`` the loop
    the Lambda entry points run on, where the reply queue's client lives.
    """

    def __init__(
        self, config: RunnerConfig, tasks: Mapping[str, Task[Any, Any]], runner: LoopRunner
    ) -> None:
        self.config = config
        self.tasks = tasks
        self.runner = runner

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def secret(self) -> str | bytes | None:
        return self.config.secret

    @property
    def concurrency(self) -> int:
        return self.config.concurrency

    @property
    def deadline_margin(self) -> float:
        return self.config.deadline_margin

    def lookup(self, envelope: TaskEnvelope) -> Task[Any, Any]:
        """The registered task an envelope names, after the depth check."""
        task = self.tasks.get(envelope.task)
        if task is None:
            raise UnknownTask(
                f"no task named {envelope.task!r} is registered in app {self.name!r}; "
                f"registered: {sorted(self.tasks) or 'none'}"
            )
        if envelope.depth > self.config.max_depth:
            raise DepthExceeded(
                f"envelope at depth {envelope.depth} is past the depth budget of "
                f"{self.config.max_depth}"
            )
        return task

    async def run_envelope(
        self,
        raw: bytes | str | dict[str, Any],
        *,
        answered: bool = False,
        message_id: str | None = None,
    ) -> TaskResult:
        """Decode, check, run one envelope; never raises for what the message or task did.

        ``answered``: the way the envelope came in carries its reply back (a chunk's
        response), so it is done whatever happened (see ``_settlement.py``). ``message_id``:
        the SQS message it came in, for its span. With tracing on, the run is a span that
        continues the sender's trace (the envelope's ``traceparent``).
        """
        envelope: TaskEnvelope | None = None
        claim = None
        span = None
        with contextlib.ExitStack() as scope:
            try:
                envelope = decode_task(raw, secret=self.config.secret)
                scope.enter_context(_naming(envelope))  # what is logged from here names it
                span = task_span(envelope, message_id=message_id)
                _refuse_if_expired(envelope)
                _refuse_if_older_than(envelope, self.config.max_age)
                if envelope.claim is not None:
                    claim = envelope.claim
                    envelope = await claimed_envelope(self.config.claim_check, envelope, self.name)
                task = self.lookup(envelope)
                bound = task.signature.bind(task.name, envelope.args, envelope.kwargs)
                reply = await self._reply_within_limit(task, envelope, bound)
            except Exception as exc:
                result = _failed(envelope, exc)
            except BaseException:  # cancelled: end the span, never swallow it
                if span is not None:
                    span.end()
                raise
            else:
                result = TaskResult(reply, None, envelope)
            if span is not None:
                span.end(result.error)
            claim_settles = settlement(result, answered=answered)
            await settle_claim(self.config.claim_check, claim, claim_settles)
        return TaskResult(
            sign_reply(result.reply, self.config.secret), result.error, result.envelope
        )

    async def _reply_within_limit(
        self, task: Task[Any, Any], envelope: TaskEnvelope, bound: Bound
    ) -> ReplyEnvelope:
        """The reply; one for a reply queue over its limit goes through the claim check."""
        reply = await self._reply_once(task, envelope, bound)
        if envelope.reply_to and self.config.claim_check is not None:
            reply = await reply_within_limit(
                self.config.claim_check, reply, secret=self.config.secret
            )
        return reply

    async def _reply_once(
        self, task: Task[Any, Any], envelope: TaskEnvelope, bound: Bound
    ) -> ReplyEnvelope:
        """The task's reply; for an idempotent task, once per key (duplicates get the first)."""
        if not task.idempotent or self.config.idempotency is None:
            return await self._reply(task, envelope, bound)
        key = task.call_key(envelope.args, envelope.kwargs, envelope.idempotency_key)
        time_left = run_time_left(task, envelope)
        # The claim ends when this run must have ended: its deadline, at which it is cancelled.
        expires_at_ms = now_ms() + int(
            1000 * (DEFAULT_IN_PROGRESS if time_left is None else time_left)
        )
        reply = await run_once(
            self.config.idempotency,
            key,
            expires_at_ms=expires_at_ms,
            run=functools.partial(self._reply, task, envelope, bound),
        )
        # A reply stored by an earlier delivery answers this envelope: a fan-in matches by id.
        return reply if reply.id == envelope.id else reply.model_copy(update={"id": envelope.id})

    async def _reply(
        self, task: Task[Any, Any], envelope: TaskEnvelope, bound: Bound
    ) -> ReplyEnvelope:
        """One run of the task: its reply, recorded (``App(records=)``) as it starts and ends."""
        records = self.config.records
        if records is None:
            return await _reply(task, envelope, bound)
        started = await records.started(self.name, envelope)
        try:
            reply = await _reply(task, envelope, bound)
        except Exception as exc:
            await records.failed(self.name, envelope, started, exc)
            raise
        await records.succeeded(self.name, envelope, started, reply.value)
        return reply


async def _reply(task: Task[Any, Any], envelope: TaskEnvelope, bound: Bound) -> ReplyEnvelope:
    value = await _run(task, envelope, bound)
    try:
        return ReplyEnvelope(id=envelope.id, ok=True, value=value)
    except ValidationError as exc:
        message = f"task {envelope.task!r} returned a value that is not JSON: {exc}"
        raise UsageError(message) from exc


def _naming(envelope: TaskEnvelope) -> contextlib.AbstractContextManager[None]:
    """The log fields of an envelope's run: its ids and task, never its arguments.

    ``item_index`` goes: the worker's own fan-out of a batch's records numbers them, but the
    index a reader looks for is the sender's, which the envelope does not carry.
    """
    return log_fields(
        item_index=None,
        envelope_id=envelope.id,
        batch_id=envelope.batch_id,
        task=envelope.task,
    )


def _failed(envelope: TaskEnvelope | None, error: Exception) -> TaskResult:
    """The result of an envelope that was refused or whose task raised.

    A refusal is logged (a task's own failure is, by :func:`_run`): an expired envelope is done
    without running, and the log is where it shows. Never the arguments: the library's envelope
    errors name a task, an id, a field, never a value.
    """
    reply_id = envelope.id if envelope is not None else "?"
    if isinstance(error, EnvelopeError):
        log.warning("refused envelope id=%s: %s: %s", reply_id, type(error).__name__, error)
    return TaskResult(
        ReplyEnvelope(id=reply_id, ok=False, error=error_info(error)), error, envelope
    )


async def _run(task: Task[Any, Any], envelope: TaskEnvelope, bound: Bound) -> Any:
    """Run the task under its depth and deadline, logged (never its arguments)."""
    started = time.monotonic()
    depth_token = current_depth.set(envelope.depth)
    time_left = run_time_left(task, envelope)
    # What the task dispatches inherits the tighter of its timeout and its sender's deadline.
    handed_on = None if time_left is None else now_ms() + int(time_left * 1000)
    deadline_token = current_deadline_ms.set(handed_on)
    try:
        value = await _call_within(task, bound, time_left)
    except Exception as exc:
        log.warning(
            "task %s id=%s batch=%s failed: %s",
            task.name,
            envelope.id,
            envelope.batch_id,
            type(exc).__name__,
        )
        raise
    finally:
        current_depth.reset(depth_token)
        current_deadline_ms.reset(deadline_token)
    log.info(
        "task %s id=%s batch=%s ok in %.1f ms",
        task.name,
        envelope.id,
        envelope.batch_id,
        (time.monotonic() - started) * 1000,
    )
    return value


async def _call_within(task: Task[Any, Any], bound: Bound, time_left: float | None) -> Any:
    """Run the task, stopped when its time is up (its timeout or its sender's deadline)."""
    if time_left is None:
        return await _call(task, bound)
    timer = asyncio.timeout(time_left)
    try:
        async with timer:
            return await _call(task, bound)
    except TimeoutError as exc:
        if not timer.expired():
            raise  # the task's own TimeoutError
        raise TaskTimedOut(
            f"task {task.name!r} was stopped after {time_left:.3f} s: its timeout or its "
            "sender's deadline passed"
        ) from exc


async def _call(task: Task[Any, Any], bound: Bound) -> Any:
    args, kwargs = bound
    if task.is_async:
        return await task.fn(*args, **kwargs)
    call = functools.partial(task.fn, *args, **kwargs)
    return await anyio.to_thread.run_sync(call)


def _refuse_if_older_than(envelope: TaskEnvelope, max_age: float | None) -> None:
    """Raise :class:`Expired` if ``max_age`` is set and the envelope is older (or undated)."""
    if max_age is None:
        return
    if envelope.issued_ms is None:
        raise Expired(
            f"task {envelope.task!r} id={envelope.id} carries no issued_ms, and this app "
            f"refuses signed envelopes older than max_age={max_age:g} s: send it with a "
            "current aiofanout (encode_task stamps it when it signs)"
        )
    age = (now_ms() - envelope.issued_ms) / 1000
    if age > max_age:
        raise Expired(
            f"task {envelope.task!r} id={envelope.id} was signed {age:.0f} s ago, past this "
            f"app's max_age={max_age:g} s: it does not run (a replay, or a redelivery that "
            "came too late)"
        )


def _refuse_if_expired(envelope: TaskEnvelope) -> None:
    """Raise :class:`Expired` if the sender's deadline for this envelope has passed."""
    if envelope.deadline_ms is not None and envelope.deadline_ms <= now_ms():
        late = (now_ms() - envelope.deadline_ms) / 1000
        raise Expired(
            f"task {envelope.task!r} id={envelope.id} arrived {late:.3f} s after its deadline: "
            "the sender stopped waiting, so it does not run"
        )


def run_time_left(task: Task[Any, Any], envelope: TaskEnvelope) -> float | None:
    """Seconds a run may take: the least of its task's timeout and its two deadlines."""
    limits = []
    if task.timeout is not None:
        limits.append(task.timeout)
    if envelope.deadline_ms is not None:
        limits.append((envelope.deadline_ms - now_ms()) / 1000)
    invocation_ends_ms = INVOCATION_ENDS_MS.get()
    if invocation_ends_ms is not None:  # Lambda stops the run there, whatever else says
        limits.append((invocation_ends_ms - now_ms()) / 1000)
    return max(0.0, min(limits)) if limits else None
