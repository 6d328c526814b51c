"""Inputs a fan-out can stop reading and pick up again later: the resumable sources.

A source reads items from a :data:`Position`, a small JSON object that says where an item is
(``{"index": 12}`` for a list, ``{"index": 12, "offset": 4096, "etag": ...}`` for an S3
object), so a later process, another Lambda invocation, can start where this one stopped.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["Position", "Source", "SourceItem", "SequenceSource"]

#: Where an item sits in a source: a JSON object with at least ``"index"``, the item's
#: position in the whole input (0-based), which is also its index in the fan-out's result.
Position = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One item read from a source, with the position to read it again from.

    Example::

        async for entry in source.read(source.start()):
            print(entry.index, entry.item)   # entry.position reads it again
    """

    index: int
    position: Position
    item: Any


@runtime_checkable
class Source(Protocol):
    """An input that can be read from a :data:`Position` (see :mod:`aiofanout.durable`).

    Example::

        class Numbers:  # the numbers 0..n-1, as a source
            def __init__(self, n: int) -> None:
                self.n = n

            def start(self) -> Position:
                return {"index": 0}

            async def read(self, position: Position) -> AsyncGenerator[SourceItem, None]:
                for i in range(position["index"], self.n):
                    yield SourceItem(i, {"index": i}, i)
    """

    def start(self) -> Position:
        """The position of the first item."""
        ...

    def read(self, position: Position) -> AsyncGenerator[SourceItem, None]:
        """The items from ``position`` (included) to the end, in order, read lazily."""
        ...


class SequenceSource:
    """A list, a tuple or a range as a source: the position is the index.

    The orchestrator must build the same sequence on every invocation (it is not stored).

    Example::

        source = SequenceSource(range(20_000))
    """

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = items

    def start(self) -> Position:
        return {"index": 0}

    async def read(self, position: Position) -> AsyncGenerator[SourceItem, None]:
        items = self.items
        for index in range(int(position["index"]), len(items)):
            yield SourceItem(index, {"index": index}, items[index])
