"""Fan out from code without an event loop: a Django view, a Flask handler, a script.

The same calls as the top level, with the same options and result types, made from plain
functions: the work runs on an event loop the library owns, on a thread of its own, shared by
every calling thread and kept between calls, so a target's client and connection pool are made
once and stay warm::

    import aiofanout.sync
    from aiofanout import LambdaTarget

    resize = LambdaTarget("image-worker", task="resize")     # once, at import

    def view(request):
        thumbnail = aiofanout.sync.dispatch(resize, request.GET["key"], timeout=30)
        result = aiofanout.sync.dispatch_many(resize, keys, concurrency=50, timeout=30)
        ...

A target that holds a client (``LambdaTarget``, ``SqsTarget``, ``HttpTarget``) stays open on
that loop after its first call, as ``async with target.opened()`` would keep it: at most 32 at
once (the least recently used closes first), all closed at interpreter exit or by
:func:`close`. ``on_progress`` callbacks and async targets run on the library's loop; sync
targets in its worker threads. A call runs in a copy of the caller's ``contextvars``.

Inside a running event loop these raise :class:`~aiofanout.errors.UsageError` instead of
blocking it: there, ``await aiofanout.dispatch_many(...)``. In a process forked after a call,
use targets made in the child.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, Unpack, cast, overload

from . import _dispatch, _engine
from ._dispatch import DispatchOptions
from ._engine import FanoutOptions, Items
from ._loop_thread import library_loop
from ._public import show_public_path
from ._result import FanoutResult
from ._target import Target

__all__ = ["close", "dispatch", "dispatch_many"]

T = TypeVar("T")


@overload
def dispatch_many(
    target: Callable[[Any], Awaitable[T]], items: Items, **options: Unpack[FanoutOptions]
) -> FanoutResult[T]: ...
@overload
def dispatch_many(
    target: Callable[[Any], T], items: Items, **options: Unpack[FanoutOptions]
) -> FanoutResult[T]: ...
@overload
def dispatch_many(
    target: Target, items: Items, **options: Unpack[FanoutOptions]
) -> FanoutResult[Any]: ...
def dispatch_many(
    target: object, items: Items, **options: Unpack[FanoutOptions]
) -> FanoutResult[Any]:
    """:func:`aiofanout.dispatch_many` from code without a loop: the same options and result.

    Raises:
        UsageError: an option is wrong, or this was called inside a running event loop.

    Example::

        result = aiofanout.sync.dispatch_many(target, keys, concurrency=50, timeout=30)
        result.raise_for_failures()

    """
    loop = library_loop()

    async def work() -> FanoutResult[Any]:
        await loop.keep_open(target, options.get("concurrency", 1), options.get("timeout"))
        return await _engine.dispatch_many(cast(Any, target), items, **options)

    return loop.run(work(), caller="dispatch_many")


@overload
def dispatch(
    target: Callable[[Any], Awaitable[T]], item: Any, **options: Unpack[DispatchOptions]
) -> T: ...
@overload
def dispatch(target: Callable[[Any], T], item: Any, **options: Unpack[DispatchOptions]) -> T: ...
@overload
def dispatch(target: Target, item: Any, **options: Unpack[DispatchOptions]) -> Any: ...
def dispatch(target: object, item: Any, **options: Unpack[DispatchOptions]) -> Any:
    """:func:`aiofanout.dispatch` from code without a loop: one item's value, or its error.

    Raises:
        The item's error, as :func:`aiofanout.dispatch` does; :class:`UsageError` for a wrong
        option or a call inside a running event loop.

    Example::

        thumbnail = aiofanout.sync.dispatch(resize, "a.jpg", timeout=30, retry=3)
        sent = aiofanout.sync.dispatch(queue_target, "b.jpg")   # a Sent: its message id

    """
    loop = library_loop()

    async def work() -> Any:
        await loop.keep_open(target, 1, options.get("timeout"))
        return await _dispatch.dispatch(cast(Any, target), item, **options)

    return loop.run(work(), caller="dispatch")


def close() -> None:
    """Close the targets held open and stop the library's loop; the next call starts anew.

    Called at interpreter exit on its own; call it to let go of clients and reply queues
    sooner (at the end of a script's work, or of a test).

    Example::

        try:
            aiofanout.sync.dispatch_many(target, items, concurrency=10)
        finally:
            aiofanout.sync.close()
    """
    library_loop().close()


show_public_path(__name__, __all__, globals())
