"""What becomes of an envelope once it ran: done, or delivered again. One rule for every way in.

A direct invoke, a chunk of envelopes, an SQS record, and the arguments a claim keeps in S3
all end by :func:`settlement`, so they cannot disagree:

- ``DONE``: it succeeded; or its sender has the answer (a chunk's response, or the error reply
  sent to its ``reply_to`` queue: the sender's retry policy decides what comes next); or it
  expired (its sender stopped waiting, so running it later is work nobody reads; it is logged).
  Its claimed arguments are deleted (a sender's retry uploads them again).
- ``AGAIN``: it failed and nobody has the answer: the source delivers it again (Lambda's
  asynchronous retries, then the function's on-failure destination; SQS's redelivery, then the
  queue's dead-letter queue), so it ends where a user can see it, its claimed arguments still
  there for that delivery (the bucket's lifecycle rule clears what is never delivered again).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from .._errors import Expired

if TYPE_CHECKING:
    from ._task_result import TaskResult

__all__ = ["Settlement", "settlement"]


class Settlement(enum.Enum):
    """Whether an envelope that ran is done, or is to be delivered again."""

    DONE = "done"
    AGAIN = "again"


def settlement(result: TaskResult, *, answered: bool = False) -> Settlement:
    """The settlement of ``result``; ``answered``: the way it came in carries the reply back."""
    if result.error is None or answered or isinstance(result.error, Expired):
        return Settlement.DONE
    envelope = result.envelope
    if envelope is not None and envelope.reply_to:
        return Settlement.DONE  # the error reply is the answer
    return Settlement.AGAIN
