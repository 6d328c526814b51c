"""Writing a run's journal: terminal states buffered in memory, written in whole parts.

The engine records an item synchronously, the moment it ends; the writer buffers the line and a
background task writes a part when ``part_records`` lines wait or ``flush_every`` seconds passed,
so a fan-out never waits on S3 per item. What a crash loses is the buffer: at most about one
part's items, which are then simply not in the journal, and ``resume`` runs them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

from .._errors import JournalError, UsageError
from .._log_fields import library_logger
from .._outcome import FAILED, Attempt
from ._inputs import InputLog
from ._records import encode_record
from ._storage import Storage

__all__ = ["RunWriter", "part_prefix"]

log = library_logger("aiofanout")
PUT_ATTEMPTS = 4


def part_prefix(run_id: str) -> str:
    """Where the parts of a run's journal are."""
    return f"{run_id}/parts/"


class RunWriter:
    """The journal of one process's share of a run: its parts, written in order.

    ``generation`` goes first in the part names (0 for a fan-out in one process, the invocation
    number for a continued one), so a later invocation can read only the parts that may hold
    items past its cursor.
    """

    def __init__(
        self,
        storage: Storage,
        run_id: str,
        *,
        token: str = "",
        generation: int = 0,
        part_records: int = 1000,
        flush_every: float = 1.0,
        inputs: InputLog | None = None,
    ) -> None:
        self.storage = storage
        self.inputs = inputs  # the fingerprints of the items read: written before their parts
        self.run_id = run_id
        self.token = token  # made when the run started: one run id in two journals, two runs
        self.generation = generation
        self.part_records = part_records
        self.flush_every = flush_every
        self._writer_id = uuid.uuid4().hex[:8]  # two writers of one run never share a name
        self._sequence = 0
        self._lines: list[bytes] = []
        self._wake = asyncio.Event()
        self._taken = asyncio.Event()  # set each time the write loop takes the buffered lines
        self._failing = False  # the last flush of the write loop failed
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.written = 0  # lines written to parts so far

    def start(self) -> None:
        """Start writing parts in the background."""
        self._task = asyncio.create_task(self._write_loop())

    def item_key(self, index: int) -> str:
        """``"<run id>:<token>:<index>"``: what a target sends as the item's idempotency key."""
        return f"{self.run_id}:{self.token}:{index}"

    def record(
        self, index: int, result: Attempt, attempts: int, elapsed: float, *, by_deadline: bool
    ) -> Attempt:
        """Buffer an item's terminal state; what is recorded (a value not JSON fails the item).

        An item the deadline ended is recorded like any other (``by_deadline`` is not read): a
        resume runs again every item that did not succeed.
        """
        try:
            line = encode_record(index, result, attempts, elapsed)
        except UsageError as exc:
            result = (FAILED, None, exc)
            line = encode_record(index, result, attempts, elapsed)
        self._lines.append(line)
        if len(self._lines) >= self.part_records and not self._failing:
            self._wake.set()  # (a store that refuses parts is tried again every flush_every)
        return result

    async def wait_for_room(self) -> None:
        """Wait while a whole part is buffered and not yet taken to be written.

        Items that never wait for I/O would otherwise keep the event loop from the write loop
        for the whole run, and buffer all of it: the part a crash may lose would grow without
        bound. Workers wait here before taking an item, so the journal sets the pace when it
        falls behind, and the run goes on while the part it took is written.
        """
        while len(self._lines) >= self.part_records and self._writing():
            self._wake.set()
            self._taken.clear()
            await self._taken.wait()

    def _writing(self) -> bool:
        # While the store refuses parts, waiting would only slow the run: lines stay buffered
        # for the next try, and aclose raises JournalError if they never get written.
        running = self._task is not None and not self._task.done()
        return running and not self._closing and not self._failing

    async def _write_loop(self) -> None:
        try:
            while not self._closing:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.flush_every):
                        await self._wake.wait()
                self._wake.clear()
                try:
                    await self.flush()
                except JournalError as exc:  # the lines stay buffered; the next flush tries again
                    log.warning("%s; trying again at the next flush", exc)
                    self._failing = True
                    self._wake.clear()  # wakes asked for meanwhile: the next try is flush_every on
                    self._taken.set()  # workers waiting for room go on: see _writing
                else:
                    self._failing = False
        finally:
            self._taken.set()  # nobody waits on a write loop that has ended

    async def flush(self) -> None:
        """Write what is buffered as one part (retrying a failed write a few times).

        The fingerprints of the items read so far go first: a part only records items read
        before it, so every journaled item's fingerprint is written (see ``_inputs.py``).
        """
        lines, self._lines = self._lines, []
        self._taken.set()
        try:
            await self._write_fingerprints()
        except BaseException:
            self._lines[:0] = lines
            raise
        if not lines:
            return
        key = self._next_key()
        try:
            await _put_with_retries(self.storage, key, b"".join(lines))
        except BaseException:
            self._lines[:0] = lines  # not written: keep them, in order, for the next try
            raise
        self.written += len(lines)

    async def _write_fingerprints(self) -> None:
        taken = None if self.inputs is None else self.inputs.take()
        if taken is None:
            return
        key, data = taken
        try:
            await _put_with_retries(self.storage, key, data)
        except BaseException:
            assert self.inputs is not None
            self.inputs.give_back(data)
            raise

    def _next_key(self) -> str:
        self._sequence += 1
        stamp = int(time.time() * 1000)
        name = f"{self.generation:05d}-{stamp:013d}-{self._writer_id}-{self._sequence:05d}.jsonl"
        return part_prefix(self.run_id) + name

    async def aclose(self) -> None:
        """Write everything still buffered; raise :class:`JournalError` if that fails."""
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            await task
        await self.flush()
        marker = None if self.inputs is None else self.inputs.end_marker()
        if marker is not None:
            await _put_with_retries(self.storage, *marker)


async def _put_with_retries(storage: Storage, key: str, data: bytes) -> None:
    for attempt in range(PUT_ATTEMPTS):
        try:
            await storage.put(key, data)
            return
        except Exception as exc:  # any store error: S3, disk, network
            if attempt == PUT_ATTEMPTS - 1:
                raise JournalError(
                    f"could not write journal part {storage.location}{key}: {exc}"
                ) from exc
            await asyncio.sleep(0.1 * 2**attempt)
