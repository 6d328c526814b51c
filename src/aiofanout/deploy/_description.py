"""The stack: every part, checked together, and the facts derived from them in one place.

The template and the local stack both read what a stack *means* through the methods here (a
consumed queue's dead-letter queue and visibility timeout, who answers replies, which extras a
function needs), never by working it out again, so the two cannot drift.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from .._errors import UsageError
from ._model import Function, Queue, SqsMapping, Subscription, Topic, _Part
from ._refs import Reference, parse_reference
from ._stores import ClaimCheckBucket, IdempotencyTable, JournalBucket
from ._toml import read_stack

__all__ = ["LOG_RETENTION_DAYS", "Stack"]

#: CloudWatch Logs' retention periods (``RetentionInDays`` takes no other value).
LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922}
    | {3288, 3653}
)
#: The least visibility timeout of a consumed queue: SQS's own default.
MIN_VISIBILITY = 30


class Stack(_Part):
    """One description of a stack: what ``serve --config`` runs and ``build`` deploys.

    Read one from a TOML stack file with :meth:`load` (the usual way), or make one here.

    Example::

        stack = Stack.load("stack.toml")
        stack = Stack(functions=[Function(name="worker", handler="worker.lambda_handler")])
    """

    name: str = Field(default="aiofanout", pattern=r"[A-Za-z][A-Za-z0-9-]{0,127}")
    python: Literal["3.11", "3.12", "3.13"] = "3.11"
    log_retention_days: int = 30
    claim_check: ClaimCheckBucket | None = None
    idempotency: IdempotencyTable | None = None
    journal: JournalBucket | None = None
    queues: list[Queue] = Field(default_factory=list)
    functions: list[Function] = Field(default_factory=list)
    mappings: list[SqsMapping] = Field(default_factory=list)
    topics: list[Topic] = Field(default_factory=list)
    subscriptions: list[Subscription] = Field(default_factory=list)

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        _check(self)

    @classmethod
    def load(cls, path: str | Path) -> Stack:
        """Read and check the TOML stack file at ``path`` (:class:`UsageError` says what is wrong).

        Example::

            stack = Stack.load("examples/deploy/stack.toml")
        """
        return read_stack(Path(path), cls)

    # -- what the parts mean together --------------------------------------------------------

    def function(self, name: str) -> Function:
        """The function called ``name``."""
        return next(f for f in self.functions if f.name == name)

    def consumers(self, queue: str) -> list[tuple[SqsMapping, Function]]:
        """The mappings that consume ``queue``, with their functions."""
        return [(m, self.function(m.function)) for m in self.mappings if m.queue == queue]

    def dead_letter(self, queue: Queue) -> str | None:
        """The queue's dead-letter queue: its own, or ``<name>-dlq`` for a consumed queue."""
        if queue.dead_letter or not self.consumers(queue.name):
            return queue.dead_letter
        base, dot, _ = queue.name.partition(".fifo")
        return f"{base}-dlq{'.fifo' if dot else ''}"

    def all_queues(self) -> list[Queue]:
        """The declared queues and the dead-letter queues they imply, dead letters first."""
        declared = {q.name for q in self.queues}
        implied = [
            Queue(name=name, retention=1209600)  # 14 days: the longest, to look at what failed
            for name in dict.fromkeys(filter(None, map(self.dead_letter, self.queues)))
            if name not in declared
        ]
        targets = {self.dead_letter(q) for q in self.queues}
        declared_first = sorted(self.queues, key=lambda q: q.name not in targets)
        return [*implied, *declared_first]

    def required_visibility(self, queue: str) -> int:
        """6x the longest consumer timeout plus its batching window (AWS's advice), >= 30 s."""
        needs = [6 * math.ceil(f.timeout) + m.batching_window for m, f in self.consumers(queue)]
        return max([MIN_VISIBILITY, *needs]) if needs else MIN_VISIBILITY

    def visibility_timeout(self, queue: Queue) -> int | None:
        """The queue's visibility timeout: its own, else what its consumers need."""
        if queue.visibility_timeout is not None or not self.consumers(queue.name):
            return queue.visibility_timeout
        return self.required_visibility(queue.name)

    def answers_replies(self, function: Function) -> bool:
        """Whether the function sends replies: said so, or something invokes or feeds it."""
        if function.answers_replies is not None:
            return function.answers_replies
        invoked = any(function.name in f.invokes for f in self.functions)
        subscribed = any(s.function == function.name for s in self.subscriptions)
        return invoked or subscribed or any(m.function == function.name for m in self.mappings)

    def extras(self, function: Function) -> list[str]:
        """The aiofanout extras bundled with the function."""
        if function.extras is not None:
            return sorted(function.extras)
        return ["aws"] if function.calls_aws or self.answers_replies(function) else []

    def topic(self, name: str) -> Topic:
        """The topic called ``name``."""
        return next(t for t in self.topics if t.name == name)

    def subscribed_queues(self) -> dict[str, list[str]]:
        """Each queue subscribed to topics, with those topics (what its queue policy allows)."""
        found: dict[str, list[str]] = {}
        for subscription in self.subscriptions:
            if subscription.queue is not None:
                found.setdefault(subscription.queue, []).append(subscription.topic)
        return found

    def reply_queues(self) -> list[Queue]:
        """The declared queues that are shared reply queues."""
        return [q for q in self.queues if q.replies]

    def references(self) -> Iterator[tuple[Function, str, Reference]]:
        """Every reference in an environment: the function, the variable, the reference."""
        for function in self.functions:
            for key, value in function.environment.items():
                reference = parse_reference(value)
                if reference is not None:
                    yield function, key, reference


# -- the checks of parts against each other --------------------------------------------------


def _check(stack: Stack) -> None:
    if stack.log_retention_days not in LOG_RETENTION_DAYS:
        raise UsageError(
            f"log_retention_days {stack.log_retention_days}: CloudWatch takes one of "
            f"{sorted(LOG_RETENTION_DAYS)}"
        )
    _unique("function", [f.name for f in stack.functions])
    _unique("queue", [q.name for q in stack.all_queues()])
    queues = {q.name: q for q in stack.queues}
    for mapping in stack.mappings:
        _check_mapping(stack, mapping, queues)
    for queue in stack.queues:
        _check_queue(stack, queue, queues)
    for function in stack.functions:
        _check_function(stack, function, queues)
    _unique("topic", [t.name for t in stack.topics])
    for subscription in stack.subscriptions:
        _check_subscription(stack, subscription, queues)
    for function, key, reference in stack.references():
        _check_reference(stack, f"function {function.name!r}: {key}", reference, queues)


def _unique(kind: str, names: list[str]) -> None:
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"two {kind}s are called {twice}: names are unique in a stack")


def _check_mapping(stack: Stack, mapping: SqsMapping, queues: dict[str, Queue]) -> None:
    where = f"event_source_mapping {mapping.queue!r} -> {mapping.function!r}"
    if mapping.queue not in queues:
        raise UsageError(f"{where}: the queue {mapping.queue!r} is not a [[queue]] here")
    if mapping.function not in {f.name for f in stack.functions}:
        raise UsageError(f"{where}: the function {mapping.function!r} is not a [[function]] here")
    if queues[mapping.queue].fifo and (mapping.batch_size > 10 or mapping.batching_window):
        raise UsageError(
            f"{where}: a FIFO queue's mapping takes batches of 1-10, without a batching_window"
        )
    if queues[mapping.queue].replies:
        raise UsageError(f"{where}: a reply queue is read by its senders, not by a mapping")


def _check_queue(stack: Stack, queue: Queue, queues: dict[str, Queue]) -> None:
    dead = queue.dead_letter
    if dead is not None and (dead not in queues or dead == queue.name):
        raise UsageError(f"queue {queue.name!r}: dead_letter {dead!r} is not another [[queue]]")
    if dead is not None and queues[dead].fifo != queue.fifo:
        raise UsageError(f"queue {queue.name!r}: a FIFO queue's dead-letter queue is FIFO too")
    needed = stack.required_visibility(queue.name)
    own = queue.visibility_timeout
    if own is not None and stack.consumers(queue.name) and own < needed:
        slowest = max(stack.consumers(queue.name), key=lambda c: c[1].timeout)[1]
        raise UsageError(
            f"queue {queue.name!r}: visibility_timeout {own} s is under 6x the timeout of "
            f"{slowest.name!r} ({slowest.timeout:g} s) plus its batching window: set at least "
            f"{needed}, or leave it out"
        )


def _check_function(stack: Stack, function: Function, queues: dict[str, Queue]) -> None:
    where = f"function {function.name!r}"
    names = {f.name for f in stack.functions}
    for name in function.invokes:
        if name not in names:
            raise UsageError(f"{where}: invokes {name!r}, which is not a [[function]] here")
    for name in function.sends_to:
        if name not in queues:
            raise UsageError(f"{where}: sends_to {name!r}, which is not a [[queue]] here")
    for name in function.publishes_to:
        if name not in {t.name for t in stack.topics}:
            raise UsageError(f"{where}: publishes_to {name!r}, which is not a [[topic]] here")
    for used in function.uses:
        if getattr(stack, used) is None:
            raise UsageError(f"{where}: uses {used!r}; declare a [{used}] table")
    if function.continuation and stack.journal is None:
        raise UsageError(f"{where}: continuation keeps its cursor in a journal: add [journal]")
    invoke = function.event_invoke_config
    for destination in (invoke.on_success, invoke.on_failure) if invoke else ():
        if destination and not destination.startswith("arn:") and destination not in queues:
            raise UsageError(f"{where}: destination {destination!r} is not a [[queue]] here")


def _check_subscription(stack: Stack, subscription: Subscription, queues: dict[str, Queue]) -> None:
    where = f"subscription {subscription.topic!r} -> {subscription.endpoint}"
    if subscription.topic not in {t.name for t in stack.topics}:
        raise UsageError(f"{where}: the topic {subscription.topic!r} is not a [[topic]] here")
    fifo = stack.topic(subscription.topic).fifo
    if subscription.function is not None:
        if subscription.function not in {f.name for f in stack.functions}:
            raise UsageError(f"{where}: {subscription.function!r} is not a [[function]] here")
        if fifo:
            raise UsageError(f"{where}: a FIFO topic delivers to SQS queues only (SNS's rule)")
        return
    queue = queues.get(str(subscription.queue))
    if queue is None:
        raise UsageError(f"{where}: {subscription.queue!r} is not a [[queue]] here")
    if queue.fifo != fifo:
        raise UsageError(
            f"{where}: a FIFO topic delivers to FIFO queues, a standard topic to standard ones"
        )


def _check_reference(
    stack: Stack, where: str, reference: Reference, queues: dict[str, Queue]
) -> None:
    if reference.kind == "queue" and reference.name not in queues:
        raise UsageError(f"{where}: {reference} names no [[queue]] here")
    if reference.kind == "function" and reference.name not in {f.name for f in stack.functions}:
        raise UsageError(f"{where}: {reference} names no [[function]] here")
    if reference.kind == "topic" and reference.name not in {t.name for t in stack.topics}:
        raise UsageError(f"{where}: {reference} names no [[topic]] here")
    single = reference.kind in ("claim_check", "journal", "idempotency")
    if single and getattr(stack, reference.kind) is None:
        raise UsageError(f"{where}: {reference} needs a [{reference.kind}] table")
