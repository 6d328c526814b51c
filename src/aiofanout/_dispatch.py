"""One item through the policy of :func:`aiofanout.dispatch_many`: its value, or its error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypedDict, TypeVar, Unpack, cast, overload

from ._engine import dispatch_many
from ._errors import UsageError
from ._options import Deadline
from ._result import FanoutResult
from ._retry import Retry
from ._target import Sent, Target

__all__ = ["DispatchOptions", "dispatch"]

T = TypeVar("T")


class DispatchOptions(TypedDict, total=False):
    """The options :func:`dispatch` takes, by keyword: those of :func:`dispatch_many` for one.

    Example::

        options: DispatchOptions = {"timeout": 10, "retry": 3, "deadline": 30}
        value = await dispatch(fetch, url, **options)
    """

    timeout: float | None
    deadline: float | Deadline | None
    retry: Retry | int | None
    threads: int | None


@overload
async def dispatch(
    target: Callable[[Any], Awaitable[T]], item: Any, **options: Unpack[DispatchOptions]
) -> T: ...
@overload
async def dispatch(
    target: Callable[[Any], T], item: Any, **options: Unpack[DispatchOptions]
) -> T: ...
@overload
async def dispatch(target: Target, item: Any, **options: Unpack[DispatchOptions]) -> Any: ...
async def dispatch(target: object, item: Any, **options: Unpack[DispatchOptions]) -> Any:
    """Run one item through ``target`` and return its value, or raise its error.

    The item goes through :func:`dispatch_many` itself (``concurrency=1``), so it meets the
    same policy: ``timeout`` per attempt, ``retry`` of what is safe to retry, the ``deadline``
    for all attempts together (see :func:`dispatch_many` for each option).

    Returns:
        What the target returned. For a fire-and-forget target (``LambdaTarget`` with
        ``invocation_type="Event"``, ``SqsTarget`` and ``SnsTarget``, without ``replies=``), a
        :class:`~aiofanout.targets.Sent`: the ids of the send, since the work runs later.

    Raises:
        The item's own error, as its :class:`Outcome` holds it after the last attempt: the
        library's (:class:`TaskFailed` with the remote type and message, :class:`Throttled`,
        ...), the builtin ``TimeoutError`` for a timed-out attempt, or what an in-process
        function raised; a note on it says how many attempts were made. An item that never
        started (the deadline had passed) raises :class:`FanoutFailed`, as
        ``raise_for_failures`` would. :class:`UsageError` for a wrong option.

    Example::

        thumbnail = await aiofanout.dispatch(target, "a.jpg", timeout=30, retry=3)
        sent = await aiofanout.dispatch(queue_target, "b.jpg")   # a Sent: sent.message_id

    """
    unknown = sorted(set(options) - set(DispatchOptions.__annotations__))
    if unknown:
        raise UsageError(
            f"dispatch() got unknown options {unknown}; it takes "
            f"{sorted(DispatchOptions.__annotations__)} (for many items: dispatch_many)"
        )
    result = await dispatch_many(cast(Any, target), [item], concurrency=1, **options)
    return _value_of(result, target)


def _value_of(result: FanoutResult[Any], target: object) -> Any:
    """The one item's value (a :class:`Sent` for a fire-and-forget target), or its error."""
    outcome = result[0]
    if outcome.ok:
        if isinstance(target, Target) and target.fire_and_forget:
            return Sent.of(outcome.value)
        return outcome.value
    error = outcome.error
    if not isinstance(error, Exception):
        result.raise_for_failures()
    assert error is not None
    tries = f"{outcome.attempts} attempt{'s' if outcome.attempts != 1 else ''}"
    error.add_note(f"aiofanout.dispatch: the item {outcome.status.value} after {tries}")
    raise error
