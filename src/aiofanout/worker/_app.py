"""``App``: the worker's facade. It registers tasks and hands Lambda's events on.

``@app.task`` fills the registry that the runner of envelopes (``_envelope_runner``) runs from;
``app.lambda_handler`` and ``app.handle`` route an event (``_handlers``: a direct invoke, a
chunk, an SQS batch) to that runner, on a ``LoopRunner`` from ``_runner``. This module imports
them all, none of them imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

from .._errors import InitFailed, UsageError
from .._log_fields import bound, lambda_fields
from .._tracing import INVOCATION_ID
from .._wire import DEFAULT_MAX_DEPTH, ClaimCheck, TaskEnvelope, check_secret, now_ms
from ._envelope_runner import INVOCATION_ENDS_MS, EnvelopeRunner, RunnerConfig
from ._handlers import handle_event
from ._idempotency import IdempotencyStore, KeyFunction
from ._init_hooks import InitHook, InitHooks, as_lambda_init_error
from ._runner import LoopRunner, check_loop_mode
from ._task import Task
from ._task_records import TaskRecords
from ._task_result import TaskResult

P = ParamSpec("P")
R = TypeVar("R")
HookT = TypeVar("HookT", bound=InitHook)


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
        records: a :class:`TaskRecords` table: every task run writes its record there
            (running, then succeeded with its value or failed with its error), keyed by the
            envelope's id, which the sender's outcome carries (``Outcome.envelope_id``).

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
        records: TaskRecords | None = None,
    ) -> None:
        check_loop_mode("App", loop)
        check_secret(secret, owner=f"App({name!r}, secret=...)")
        if max_depth < 0:
            raise UsageError(f"App(max_depth=...) must be >= 0, got {max_depth}")
        config = RunnerConfig(
            name, secret, max_depth, concurrency, deadline_margin, idempotency, claim_check,
            max_age=_checked_max_age(max_age, secret), records=records,
        )  # fmt: skip
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.runner = LoopRunner(
            fresh=loop == "fresh",
            inside_loop_advice=(
                "app.lambda_handler is the sync entry point Lambda calls; "
                "use `await app.handle(event, context)` there instead"
            ),
        )
        #: The runner of envelopes this app is the facade of (its registry is ``tasks``).
        self.envelopes = EnvelopeRunner(config, self.tasks, self.runner)
        #: The ``@app.on_init`` hooks, run once per execution environment.
        self.init_hooks = InitHooks()
        self._store_closes_with: object = None
        self._claims_open_with: object = None

    # -- what the app was given, as its runner of envelopes keeps it --------------------------

    @property
    def name(self) -> str:
        return self.envelopes.config.name

    @property
    def secret(self) -> str | bytes | None:
        return self.envelopes.config.secret

    @property
    def max_depth(self) -> int:
        return self.envelopes.config.max_depth

    @property
    def max_age(self) -> float | None:
        return self.envelopes.config.max_age

    @property
    def concurrency(self) -> int:
        return self.envelopes.config.concurrency

    @property
    def deadline_margin(self) -> float:
        return self.envelopes.config.deadline_margin

    @property
    def idempotency(self) -> IdempotencyStore | None:
        return self.envelopes.config.idempotency

    @property
    def claim_check(self) -> ClaimCheck | None:
        return self.envelopes.config.claim_check

    @property
    def records(self) -> TaskRecords | None:
        return self.envelopes.config.records

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

    def on_init(self, hook: HookT, /) -> HookT:
        """Register a function (sync or async) to run once per execution environment.

        The hooks run in registration order on the environment's loop, at its first
        invocation, before its first envelope: what they make (a client, a model, a pool)
        serves every warm invocation after. A hook that raises fails that invocation as an
        init error (``Runtime.InitError``; :class:`~aiofanout.errors.InitFailed` through
        :meth:`handle`) and nothing of the event runs; the hooks run again before the next
        envelope, which the local runtime, as AWS, gives to a new environment.

        Example::

            clients = {}

            @app.on_init
            async def open_clients() -> None:
                clients["s3"] = await session.client("s3").__aenter__()
        """
        self.init_hooks.add(hook)
        return hook

    # -- running envelopes (in _envelope_runner.py) ----------------------------------------

    def lookup(self, envelope: TaskEnvelope) -> Task[Any, Any]:
        """The registered task an envelope names, after the depth check."""
        return self.envelopes.lookup(envelope)

    async def run_envelope(
        self, raw: bytes | str | dict[str, Any], *, answered: bool = False
    ) -> TaskResult:
        """Decode, check, run one envelope; never raises for what the message or task did.

        ``answered``: the way the envelope came in carries its reply back (a chunk's
        response), so it is done whatever happened (see ``_settlement.py``). The init hooks
        run first (once), so a task run in process (eager mode) finds what they made; one that
        raises raises :class:`~aiofanout.errors.InitFailed` here.
        """
        await self.init_hooks.run_once()
        return await self.envelopes.run_envelope(raw, answered=answered)

    # -- Lambda entry points (routing in _handlers.py) ---------------------------------------

    def lambda_handler(self, event: Any, context: Any) -> Any:
        """The sync function Lambda's Python runtime calls (handler ``module.app.lambda_handler``).

        Recognises a direct invoke (one envelope, or a list of them) and an SQS event. An event
        source batch that cannot be answered record by record (records of another source, a
        record with no ``messageId``) raises :class:`InvalidEnvelope` before any record runs.
        """
        try:
            return self.runner.run(self._handle_on_the_runner(event, context))
        except InitFailed as exc:
            reported = as_lambda_init_error(exc)
            if reported is exc:
                raise
            raise reported from exc

    async def _handle_on_the_runner(self, event: Any, context: Any) -> Any:
        if self.claim_check is not None and self._claims_open_with is not self.runner.resources:
            # One S3 client for the claims for as long as the runner's loop lives (a new stack
            # after the runner closed one: open it again there).
            self._claims_open_with = self.runner.resources
            await self.runner.resources.enter_async_context(self.claim_check.opened())
        return await self.handle(event, context)

    async def handle(self, event: Any, context: Any) -> Any:
        """The async body of :meth:`lambda_handler`, for callers that have a loop already."""
        with bound(**lambda_fields(context)):  # every record of the invocation names it
            self._close_store_with_the_loop()
            await self.init_hooks.run_once()
            remaining = getattr(context, "get_remaining_time_in_millis", None)
            token = INVOCATION_ENDS_MS.set(now_ms() + int(remaining()) if remaining else None)
            request = INVOCATION_ID.set(getattr(context, "aws_request_id", None))  # task spans
            try:
                return await handle_event(self.envelopes, event, context)
            finally:
                INVOCATION_ID.reset(request)
                INVOCATION_ENDS_MS.reset(token)

    def _close_store_with_the_loop(self) -> None:
        """Have the loop runner close the store's client with what else it opened on the loop."""
        resources = self.runner.resources
        if self._store_closes_with is not resources:
            # The runner swaps in a new stack after closing one: register again with that one.
            for store in (self.idempotency, self.records):
                if store is not None:
                    resources.push_async_callback(store.aclose)
            self._store_closes_with = resources


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
