"""The task registry: ``App``, ``@app.task``, and running one envelope.

A worker runs only what it registered. A message names a task; the name is looked up in the
app's dict of tasks and nothing else: nothing is imported, ``exec``'d or unpickled, so a message
naming ``os.system`` gets :class:`UnknownTask` like any other unknown name.

The Lambda entry points route events in ``_handlers`` (which sees the app only as a parameter)
and run on a ``LoopRunner`` from ``_runner``: this module imports both, neither imports it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

import anyio.to_thread
from pydantic import ValidationError

from .._errors import DepthExceeded, EnvelopeError, Expired, TaskTimedOut, UnknownTask, UsageError
from .._wire import (
    DEFAULT_MAX_DEPTH,
    ClaimCheck,
    ReplyEnvelope,
    TaskEnvelope,
    check_secret,
    current_deadline_ms,
    current_depth,
    decode_task,
    error_info,
    now_ms,
    sign_reply,
)
from ._envelope_runner import TaskResult
from ._handlers import handle_event
from ._idempotency import DEFAULT_IN_PROGRESS, IdempotencyStore, KeyFunction, run_once
from ._reply_sender import claimed_envelope, reply_within_limit, settle_claim
from ._runner import LoopRunner, check_loop_mode
from ._settlement import settlement
from ._task import Bound, Task

#: When the Lambda invocation being handled ends (epoch ms), for idempotency claims: a run cut
#: off there must not hold its key any longer.
_INVOCATION_ENDS_MS: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "aiofanout_invocation_ends_ms", default=None
)

log = logging.getLogger("aiofanout.worker")
P = ParamSpec("P")
R = TypeVar("R")


class App:
    """A registry of tasks, and the worker entry points that run them.

    Args:
        name: the app's name, shown in logs.
        secret: with a secret, envelopes are signed (HMAC-SHA256) when sent and required to be
            signed when received; unsigned or wrongly signed ones never run.
        max_depth: the most hops of task-to-task dispatch (A -> B -> A loops stop there).
        concurrency: the most records of one SQS batch run at once.
        deadline_margin: seconds kept free before the Lambda deadline: an SQS batch stops taking
            records when less than this remains, and reports the rest as failures.
        loop: ``"reuse"`` (one event loop per execution environment, kept across warm
            invocations so clients and pools stay valid) or ``"fresh"`` (``asyncio.run`` per call).
        idempotency: the store of ``@app.task(idempotent=True)`` tasks' keys and replies
            (:class:`DynamoDBStore`, or :class:`MemoryStore` in tests).
        claim_check: a :class:`ClaimCheck` (the senders' bucket): envelopes whose arguments
            wait in S3 are fetched, checked against their digest and the object deleted; a
            reply to ``reply_to`` over the SQS limit goes back through S3 the same way.
        max_age: seconds a signed envelope stays valid after it was made (needs ``secret``):
            older ones, a replay of a captured envelope or a redelivery past it, are refused
            with :class:`Expired` and never run. Default ``None``: valid until the envelope's
            deadline, or for ever if it has none. Make it longer than your redeliveries take
            (SQS retention, Lambda's asynchronous retries: up to 6 hours).

    Example::

        app = App("worker", secret=secret_from_env("FANOUT_SECRET"))

        @app.task
        async def add(a: int, b: int) -> int:
            return a + b

        lambda_handler = app.lambda_handler   # the function Lambda calls

    """

    def __init__(
        self,
        name: str,
        *,
        secret: str | bytes | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        concurrency: int = 16,
        deadline_margin: float = 2.0,
        loop: str = "reuse",
        idempotency: IdempotencyStore | None = None,
        claim_check: ClaimCheck | None = None,
        max_age: float | None = None,
    ) -> None:
        check_loop_mode("App", loop)
        check_secret(secret, owner=f"App({name!r}, secret=...)")
        self.max_age = _checked_max_age(max_age, secret)
        if max_depth < 0:
            raise UsageError(f"App(max_depth=...) must be >= 0, got {max_depth}")
        self.name = name
        self.secret = secret
        self.max_depth = max_depth
        self.concurrency = concurrency
        self.deadline_margin = deadline_margin
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.idempotency = idempotency
        self.claim_check = claim_check
        self._store_closes_with: object = None
        self._claims_open_with: object = None
        self.runner = LoopRunner(
            fresh=loop == "fresh",
            inside_loop_advice=(
                "app.lambda_handler is the sync entry point Lambda calls; "
                "use `await app.handle(event, context)` there instead"
            ),
        )

    def __repr__(self) -> str:
        return f"<App {self.name!r}: {len(self.tasks)} tasks>"

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(
        self,
        /,
        *,
        name: str | None = None,
        timeout: float | None = None,
        idempotent: bool = False,
        key: KeyFunction | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...
    def task(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        timeout: float | None = None,
        idempotent: bool = False,
        key: KeyFunction | None = None,
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a function (async or sync) as a task: ``@app.task`` or ``@app.task(...)``.

        ``idempotent=True`` runs the task once per idempotency key (the app needs a store:
        ``App(idempotency=...)``); duplicates get the stored reply. The key is ``key(*args,
        **kwargs)`` of the call's JSON arguments when ``key`` is given; else the key the sender
        put in the envelope (a journaled run names each item ``"<run id>:<token>:<index>"``,
        so an item runs once however often a crash makes it sent); else the arguments: equal
        calls are one call. A key that comes again with other arguments is refused with
        :class:`~aiofanout.IdempotencyKeyReused`, naming the arguments that differ.
        """

        def register(f: Callable[P, R]) -> Task[P, R]:
            task_name = name or f.__name__
            if task_name in self.tasks:
                raise UsageError(f"task {task_name!r} is already registered in app {self.name!r}")
            if idempotent and self.idempotency is None:
                raise UsageError(
                    f"task {task_name!r} is idempotent but app {self.name!r} has no store: "
                    "App(..., idempotency=DynamoDBStore(table=...))"
                )
            task = Task(self, f, name=task_name, timeout=timeout, idempotent=idempotent, key=key)
            self.tasks[task_name] = task
            return task

        return register if fn is None else register(fn)

    # -- running envelopes --------------------------------------------------------------------

    def lookup(self, envelope: TaskEnvelope) -> Task[Any, Any]:
        """The registered task an envelope names, after the depth check."""
        task = self.tasks.get(envelope.task)
        if task is None:
            raise UnknownTask(
                f"no task named {envelope.task!r} is registered in app {self.name!r}; "
                f"registered: {sorted(self.tasks) or 'none'}"
            )
        if envelope.depth > self.max_depth:
            raise DepthExceeded(
                f"envelope at depth {envelope.depth} is past the depth budget of {self.max_depth}"
            )
        return task

    async def run_envelope(
        self, raw: bytes | str | dict[str, Any], *, answered: bool = False
    ) -> TaskResult:
        """Decode, check, run one envelope; never raises for what the message or task did.

        ``answered``: the way the envelope came in carries its reply back (a chunk's
        response), so it is done whatever happened (see ``_settlement.py``).
        """
        envelope: TaskEnvelope | None = None
        claim = None
        try:
            envelope = decode_task(raw, secret=self.secret)
            _refuse_if_expired(envelope)
            _refuse_if_older_than(envelope, self.max_age)
            if envelope.claim is not None:
                claim = envelope.claim
                envelope = await claimed_envelope(self.claim_check, envelope, self.name)
            task = self.lookup(envelope)
            bound = task.signature.bind(task.name, envelope.args, envelope.kwargs)
            reply = await self._reply_once(task, envelope, bound)
            if envelope.reply_to and self.claim_check is not None:
                reply = await reply_within_limit(self.claim_check, reply, secret=self.secret)
        except Exception as exc:
            result = _failed(envelope, exc)
        else:
            result = TaskResult(reply, None, envelope)
        await settle_claim(self.claim_check, claim, settlement(result, answered=answered))
        return TaskResult(sign_reply(result.reply, self.secret), result.error, result.envelope)

    async def _reply_once(
        self, task: Task[Any, Any], envelope: TaskEnvelope, bound: Bound
    ) -> ReplyEnvelope:
        """The task's reply; for an idempotent task, once per key (duplicates get the first)."""
        if not task.idempotent or self.idempotency is None:
            return await self._reply(task, envelope, bound)
        key = task.call_key(envelope.args, envelope.kwargs, envelope.idempotency_key)
        time_left = run_time_left(task, envelope)
        # The claim ends when this run must have ended: its deadline, at which it is cancelled.
        expires_at_ms = now_ms() + int(
            1000 * (DEFAULT_IN_PROGRESS if time_left is None else time_left)
        )
        reply = await run_once(
            self.idempotency,
            key,
            expires_at_ms=expires_at_ms,
            run=functools.partial(self._reply, task, envelope, bound),
        )
        # A reply stored by an earlier delivery answers this envelope: a fan-in matches by id.
        return reply if reply.id == envelope.id else reply.model_copy(update={"id": envelope.id})

    async def _reply(
        self, task: Task[Any, Any], envelope: TaskEnvelope, bound: Bound
    ) -> ReplyEnvelope:
        value = await _run(task, envelope, bound)
        try:
            return ReplyEnvelope(id=envelope.id, ok=True, value=value)
        except ValidationError as exc:
            raise UsageError(
                f"task {envelope.task!r} returned a value that is not JSON: {exc}"
            ) from exc

    # -- Lambda entry points (routing in _handlers.py) ---------------------------------------

    def lambda_handler(self, event: Any, context: Any) -> Any:
        """The sync function Lambda's Python runtime calls (handler ``module.app.lambda_handler``).

        Recognises a direct invoke (one envelope, or a list of them) and an SQS event. An event
        source batch that cannot be answered record by record (records of another source, a
        record with no ``messageId``) raises :class:`InvalidEnvelope` before any record runs.
        """
        return self.runner.run(self._handle_on_the_runner(event, context))

    async def _handle_on_the_runner(self, event: Any, context: Any) -> Any:
        if self.claim_check is not None and self._claims_open_with is not self.runner.resources:
            # One S3 client for the claims for as long as the runner's loop lives (a new stack
            # after the runner closed one: open it again there).
            self._claims_open_with = self.runner.resources
            await self.runner.resources.enter_async_context(self.claim_check.opened())
        return await self.handle(event, context)

    async def handle(self, event: Any, context: Any) -> Any:
        """The async body of :meth:`lambda_handler`, for callers that have a loop already."""
        self._close_store_with_the_loop()
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        token = _INVOCATION_ENDS_MS.set(now_ms() + int(remaining()) if remaining else None)
        try:
            return await handle_event(self, event, context)
        finally:
            _INVOCATION_ENDS_MS.reset(token)

    def _close_store_with_the_loop(self) -> None:
        """Have the loop runner close the store's client with what else it opened on the loop."""
        resources = self.runner.resources
        if self.idempotency is not None and self._store_closes_with is not resources:
            # The runner swaps in a new stack after closing one: register again with that one.
            resources.push_async_callback(self.idempotency.aclose)
            self._store_closes_with = resources


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
    extra = {"task": task.name, "task_id": envelope.id, "batch_id": envelope.batch_id}
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
            extra=extra,
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
        extra=extra,
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


def _checked_max_age(max_age: object, secret: str | bytes | None) -> float | None:
    if max_age is None:
        return None
    if isinstance(max_age, bool) or not isinstance(max_age, int | float) or not max_age > 0:
        raise UsageError(f"App(max_age=...) is seconds > 0 (or None), got {max_age!r}")
    if secret is None:
        raise UsageError(
            "App(max_age=...) bounds the age of signed envelopes: give the app a secret too "
            "(an unsigned envelope's time can be written by anyone)"
        )
    return float(max_age)


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
    invocation_ends_ms = _INVOCATION_ENDS_MS.get()
    if invocation_ends_ms is not None:  # Lambda stops the run there, whatever else says
        limits.append((invocation_ends_ms - now_ms()) / 1000)
    return max(0.0, min(limits)) if limits else None
