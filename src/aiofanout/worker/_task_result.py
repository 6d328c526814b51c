"""What running one envelope gives: the reply, the task's exception, the envelope if valid.

The bottom of the worker: the settlement rule, the reply sender, the handlers and the runner of
envelopes all speak of a :class:`TaskResult`, and this module imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._wire import ReplyEnvelope, TaskEnvelope

__all__ = ["TaskResult"]


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What running one envelope gave: the reply, the task's exception, the envelope if valid."""

    reply: ReplyEnvelope
    error: BaseException | None
    envelope: TaskEnvelope | None = None
