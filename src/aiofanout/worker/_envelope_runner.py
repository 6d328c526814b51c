"""What the worker's parts need of an app, and what running one envelope gives.

:class:`~aiofanout.worker.App` is both protocols here: the event handlers (a direct invoke, a
chunk, an SQS batch) take an :class:`EnvelopeRunner`, and a :class:`Task` knows its app as a
:class:`TaskOwner`. They depend on these protocols and never on ``App``, so ownership points one
way, from the app down, type-only imports included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .._wire import ReplyEnvelope, TaskEnvelope

if TYPE_CHECKING:
    from ._runner import LoopRunner

__all__ = ["EnvelopeRunner", "TaskOwner", "TaskResult"]


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What running one envelope gave: the reply, the task's exception, the envelope if valid."""

    reply: ReplyEnvelope
    error: BaseException | None
    envelope: TaskEnvelope | None = None


class TaskOwner(Protocol):
    """The app a task is registered with: its name, its secret and depth budget, its runner."""

    name: str
    secret: str | bytes | None
    max_depth: int

    async def run_envelope(
        self, raw: bytes | str | dict[str, Any], *, answered: bool = False
    ) -> TaskResult: ...


class EnvelopeRunner(TaskOwner, Protocol):
    """What the event handlers need: how many envelopes at once, the deadline margin, the loop."""

    concurrency: int
    deadline_margin: float
    runner: LoopRunner
