"""A moto server whose SQS loses, duplicates and wrongly dead-letters nothing under concurrency.

moto's server answers each request on its own thread (``moto/server.py``, ``main``: werkzeug's
``run_simple(..., threaded=True)``), but its SQS model (``moto/sqs/models.py``, moto 5.2.x) changes
shared lists and sets with no lock:

- ``SQSBackend.receive_message`` marks messages received, then moves over-received ones to the
  dead-letter queue with ``queue._messages.remove(message)``. Two concurrent calls can pick the
  same message; the loser's ``remove`` raises ``ValueError`` (HTTP 500) after it has already
  marked up to 10 other messages received, so those lose a receive that no consumer saw and
  reach the DLQ early.
- ``Queue.delete_message`` rebuilds ``queue._messages`` from a snapshot: a send appended meanwhile
  is dropped, a message deleted meanwhile by another thread comes back.
- ``SQSBackend.list_queues`` and friends iterate ``self.queues`` while ``create_queue`` and
  ``delete_queue`` change it ("dictionary changed size during iteration").

This module runs every SQS backend call under one re-entrant lock, so each is atomic against the
others. One lock, not one per queue, because a receive changes two queues (the DLQ move). The
lock is a :class:`threading.Condition` over an ``RLock`` so that a long poll can let go of it:
``SQSBackend.receive_message`` sleeps in ``Queue.wait_for_messages`` (on ``queue._messages_lock``)
whenever it found nothing, and holding the lock there would stall every other client for up to
``WaitTimeSeconds``. The replacement waits on the condition instead, which releases the lock
(all re-entrant levels) for the wait and takes it back before the receive loop looks again.

Not covered: moto's own Lambda event source mappings (``Queue.add_message`` invokes a Docker
Lambda inline) would run that invoke under the lock. aiofanout's local stack polls queues through
the API instead (``aiofanout/local/_event_sources.py``), so it never takes that path.

Run the server through it (same arguments as ``python -m moto.server``)::

    python -m aiofanout.local._moto._exact_sqs -H 127.0.0.1 -p 5000

Only the standard library here; moto is imported when :func:`install` runs.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

#: Held for every SQS state change or read of the server process; released only while a long
#: poll waits. Notified when a message may have become receivable.
_STATE = threading.Condition(threading.RLock())

#: ``SQSBackend`` methods (``moto/sqs/models.py``) that read or change queues or messages. Each
#: request handler in ``moto/sqs/responses.py`` calls exactly one of them (and ``get_queue``, a
#: single dict lookup); SNS, EventBridge and S3 notifications reach SQS through ``send_message``.
_BACKEND_METHODS = (
    "create_queue",  # reads then writes ``self.queues``
    "delete_queue",
    "list_queues",  # iterates ``self.queues``
    "list_dead_letter_source_queues",
    "get_queue_attributes",  # counts over ``queue._messages``
    "set_queue_attributes",  # ``Queue._set_attributes`` re-links the DLQ
    "send_message",  # ``Queue.add_message``: FIFO dedup scan, then append
    "send_message_batch",
    "receive_message",  # marks received, moves to the DLQ, long-polls
    "delete_message",  # ``Queue.delete_message`` rebuilds ``queue._messages``
    "delete_message_batch",
    "change_message_visibility",  # scans ``queue._messages``, edits ``pending_messages``
    "change_message_visibility_batch",
    "purge_queue",  # replaces ``queue._messages`` and ``queue._pending_messages``
    "add_permission",
    "remove_permission",
    "tag_queue",
    "untag_queue",
    "list_queue_tags",
)

#: Marks a function this module installed, so a second :func:`install` changes nothing.
_MARK = "__aiofanout_exact_sqs__"


def _serialized(method: Callable[..., Any], *, notify: bool = False) -> Callable[..., Any]:
    """``method`` run under the lock; with ``notify``, waiting long polls look again afterwards."""

    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _STATE:
            try:
                return method(*args, **kwargs)
            finally:
                if notify:
                    _STATE.notify_all()

    return locked


def _serialized_iterator(method: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """A generator method drained under the lock (a lazy one would iterate outside it)."""

    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with _STATE:
            items = list(method(*args, **kwargs))
        return iter(items)

    return locked


def _wait_for_messages(queue: Any, timeout: float) -> None:
    """Replaces ``Queue.wait_for_messages``: wait for a receivable message, without the lock.

    ``SQSBackend.receive_message`` calls it only when its pass found nothing (its ``result`` is
    still empty), so nothing is half-done when the lock is let go; after the wait the loop scans
    ``queue.messages`` afresh under the lock. ``Condition.wait`` releases every re-entrant level
    of the ``RLock`` and restores them. A message becoming visible again when its visibility
    timeout runs out notifies nobody, as in moto: moto's receive loop waits at most 1 s a time.
    """
    # Wait unconditionally: a queue may hold messages this receive cannot take (a FIFO group
    # with one in flight, a message past retention), and a predicate true at once would let
    # moto's loop spin through its whole long poll holding the lock. Every send and visibility
    # change notifies under the same lock, so nothing sent meanwhile is missed.
    with _STATE:
        _STATE.wait(timeout=timeout)


def _within_retention_period(backend: Any, queue_name: str, message: Any) -> bool:
    """Replaces ``SQSBackend.is_message_valid_based_on_retention_period``, same answer, cheaper.

    moto's version reads the period through ``get_queue_attributes``, which builds every
    attribute of the queue, message counts included: a scan of the whole queue for each message
    a receive hands out. At 300 messages that made one receive of 10 take ~0.2 s, all of it now
    under the lock. ``Queue._set_attributes`` stores the period as an ``int``.
    """
    from moto.core.utils import unix_time

    queue = backend.get_queue(queue_name)
    retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
    return bool(retain_until > unix_time())


def _patch(cls: type, name: str, replacement: Callable[..., Any]) -> None:
    """Put ``replacement`` in place of ``cls.name``, marked as ours."""
    setattr(replacement, _MARK, True)
    setattr(cls, name, replacement)


def install() -> None:
    """Patch moto's SQS model in this process so each backend call is atomic. Idempotent.

    Patches the classes, so backends moto has already created are covered too.
    """
    from moto.sqs.models import Queue, SQSBackend

    if getattr(Queue.wait_for_messages, _MARK, False):
        return
    for name in _BACKEND_METHODS:
        # A visibility change can make a message receivable at once (VisibilityTimeout=0).
        notify = name.startswith("change_message_visibility")
        _patch(SQSBackend, name, _serialized(getattr(SQSBackend, name), notify=notify))
    # Used by the Resource Groups Tagging API; iterates ``self.queues``.
    _patch(
        SQSBackend, "iter_tagged_resources", _serialized_iterator(SQSBackend.iter_tagged_resources)
    )
    _patch(SQSBackend, "is_message_valid_based_on_retention_period", _within_retention_period)
    # Every new message goes through here: sends, and the DLQ move inside receive_message.
    _patch(Queue, "add_message", _serialized(Queue.add_message, notify=True))
    _patch(Queue, "wait_for_messages", _wait_for_messages)


#: The pid of the process that started this server: when it is gone, so is the server.
PARENT_PID_VARIABLE = "AIOFANOUT_PARENT_PID"


def exit_with_parent(poll: float = 0.5) -> None:
    """Exit as soon as the process that started this one has died (SIGKILL included).

    A watchdog thread rather than ``PR_SET_PDEATHSIG``: the server is started from a worker
    thread, and Linux sends that signal when the starting *thread* exits, not the process.
    """
    parent = os.environ.get(PARENT_PID_VARIABLE)
    if not parent or not parent.isdigit():
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(poll)
        os._exit(0)  # orphaned: nobody can stop this server any more

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> None:
    """Patch SQS, then run moto's server with ``argv`` (``python -m moto.server`` arguments).

    With a local runtime beside it, SNS messages for Lambda subscriptions go to that runtime
    (``_sns_deliveries.py``).
    """
    from . import _sns_deliveries

    exit_with_parent()
    install()
    _sns_deliveries.install()
    from moto.server import main as moto_main

    moto_main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
