"""A run's inputs as it first read them: a fingerprint per item, in input order.

``resume`` must be given the items the run was given, in the same order: a journaled success
is returned for its *index*, so reversed or other items would get another item's value. The
run writes an 8-byte fingerprint of each item as it reads it (``<run>/inputs/<first index>.fp``,
a chunk per journal flush, always written before the part that records those items) and
``inputs/end.json`` once its input ran out. Every later read of the run compares its items with
those fingerprints one chunk at a time, so memory stays flat however long the run, and refuses
the first index that differs, or an input longer or shorter than the run's.

An item that is not JSON is fingerprinted by its ``repr``, unless that holds a memory address
(``<object at 0x...>``), which differs in every process: such items are not compared.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from typing import Any

from .._errors import JournalError, UsageError
from ._storage import Storage

__all__ = ["InputLog", "fingerprint"]

SIZE = 8  # bytes per fingerprint
UNKNOWN = bytes(SIZE)  # an item whose fingerprint would differ in every process


def fingerprint(item: Any) -> bytes:
    """The item's fingerprint: its canonical JSON's hash, else its ``repr``'s, else ``UNKNOWN``."""
    try:
        text = "j" + json.dumps(item, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        text = "r" + repr(item)
        if " at 0x" in text:
            return UNKNOWN
    return hashlib.blake2b(text.encode(errors="surrogatepass"), digest_size=SIZE).digest()


def inputs_prefix(run_id: str) -> str:
    """Where the fingerprints of a run's inputs are."""
    return f"{run_id}/inputs/"


class InputLog:
    """The fingerprints of one run's inputs: those recorded, and those read since.

    Open it with :meth:`open`; :meth:`see` each item in input order (from any first index),
    :meth:`end` when the input ran out; the run's :class:`RunWriter` writes :meth:`take`'s
    fingerprints before each part and :meth:`end_marker` when it closes.
    """

    def __init__(
        self, storage: Storage, run_id: str, chunks: list[tuple[int, str]], ended: int | None
    ) -> None:
        self.storage = storage
        self.run_id = run_id
        self._starts = [start for start, _ in chunks]
        self._keys = [key for _, key in chunks]
        self.recorded = chunks[-1][0] if chunks else 0  # items fingerprinted so far (see open)
        self.recorded_ended = ended  # the run's item count, once a read of it ran out
        self._chunk = (0, b"")  # the recorded chunk last read: its first index and its bytes
        self._pending = bytearray()  # fingerprints of items past ``recorded``, not written yet
        self._pending_from = 0
        self.ended: int | None = None  # this read's item count, once its input ran out

    @classmethod
    async def open(cls, storage: Storage, run_id: str) -> InputLog:
        """The run's fingerprints as written so far (none for a run that predates them)."""
        prefix = inputs_prefix(run_id)
        chunks: list[tuple[int, str]] = []
        ended: int | None = None
        for key in await storage.keys(prefix):
            name = key[len(prefix) :]
            if name == "end.json":
                data = await storage.get(key)
                ended = None if data is None else _count(data, storage.location + key)
            elif name.endswith(".fp") and name[:-3].isdigit():
                chunks.append((int(name[:-3]), key))
            else:
                raise JournalError(
                    f"{storage.location}{key} is not a fingerprint file of the run's inputs "
                    "(aiofanout names them <first index>.fp): move it out of the run's inputs/"
                )
        chunks.sort()
        log = cls(storage, run_id, chunks, ended)
        if chunks:  # the last chunk's length says where the fingerprints end
            last = await log._read(len(chunks) - 1)
            log.recorded = chunks[-1][0] + len(last) // SIZE
        log._pending_from = log.recorded
        return log

    async def checked(
        self, items: Iterable[Any] | AsyncIterable[Any], *, first: int = 0
    ) -> AsyncGenerator[Any, None]:
        """``items``, each seen (and so compared with the run's) as it is read."""
        index = first
        if isinstance(items, AsyncIterable):
            async for item in items:
                await self.see(index, item)
                yield item
                index += 1
        else:
            for item in items:
                await self.see(index, item)
                yield item
                index += 1
        self.end(index)

    async def see(self, index: int, item: Any) -> None:
        """Compare the item at ``index`` with the run's, or keep its fingerprint to write.

        Raises:
            UsageError: the run had another item at ``index``, or fewer items.

        """
        mark = fingerprint(item)
        if index < self.recorded:
            known = await self._recorded(index)
            if UNKNOWN not in (known, mark) and known != mark:
                raise UsageError(
                    f"run {self.run_id!r}: item {index} is not the item the run had at index "
                    f"{index}: give resume the run's items, in the same order"
                )
            return
        if self.recorded_ended is not None:
            raise UsageError(
                f"run {self.run_id!r} had {self.recorded_ended} items; these have more (index "
                f"{index}): give resume the run's items, in the same order, and start a new "
                "run for new ones"
            )
        if index != self._pending_from + len(self._pending) // SIZE:
            raise JournalError(f"run {self.run_id!r}: item {index} was read out of order")
        self._pending += mark

    def end(self, count: int) -> None:
        """The input ran out after ``count`` items.

        Raises:
            UsageError: the run had read more items than that.

        """
        known = max(self.recorded, self._pending_from + len(self._pending) // SIZE)
        if count < known:
            raise UsageError(
                f"run {self.run_id!r} had at least {known} items; these end after {count}: "
                "give resume the run's items, in the same order"
            )
        self.ended = count

    def take(self) -> tuple[str, bytes] | None:
        """The fingerprints read since the last take, and the key to write them under."""
        if not self._pending:
            return None
        key = f"{inputs_prefix(self.run_id)}{self._pending_from:012d}.fp"
        data = bytes(self._pending)
        self._pending_from += len(self._pending) // SIZE
        self._pending.clear()
        return key, data

    def give_back(self, data: bytes) -> None:
        """Put fingerprints :meth:`take` gave back in front: they could not be written."""
        self._pending[:0] = data
        self._pending_from -= len(data) // SIZE

    def end_marker(self) -> tuple[str, bytes] | None:
        """What to write once every fingerprint is: the run's item count, if its input ran out."""
        if self.ended is None or self._pending:
            return None
        return f"{inputs_prefix(self.run_id)}end.json", json.dumps({"items": self.ended}).encode()

    async def _recorded(self, index: int) -> bytes:
        start, data = self._chunk
        if not start <= index < start + len(data) // SIZE:
            number = bisect.bisect_right(self._starts, index) - 1
            data = await self._read(number)
            start = self._starts[number]
            if not start <= index < start + len(data) // SIZE:
                raise JournalError(
                    f"{self.storage.location}{inputs_prefix(self.run_id)}: the fingerprint of "
                    f"item {index} is missing; the files were altered"
                )
        offset = (index - start) * SIZE
        return data[offset : offset + SIZE]

    async def _read(self, number: int) -> bytes:
        data = await self.storage.get(self._keys[number]) or b""
        self._chunk = (self._starts[number], data)
        return data


def _count(data: bytes, where: str) -> int:
    try:
        count = json.loads(data)["items"]
    except (ValueError, KeyError, TypeError):
        count = None
    if not isinstance(count, int) or count < 0:
        raise JournalError(f"{where} is not an item count aiofanout wrote: move it away")
    return count
