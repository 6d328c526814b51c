"""Where a run records outcomes: a column table (``dispatch_many``) or a buffer (``stream``).

Both record an item in two steps, :meth:`add` when it is taken and :meth:`finish` once, when it
reaches its terminal state; both know how many items were taken, so nobody else counts them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol

from ._outcome import PENDING, STATUSES, SUCCEEDED, Attempt, Outcome, Progress, Table


class Sink(Protocol):
    """What the engine records outcomes into."""

    @property
    def taken(self) -> int:
        """Items taken so far."""
        ...

    def add(self, item: Any) -> int:
        """Record a newly taken item; return its index."""
        ...

    def finish(self, index: int, item: Any, result: Attempt, attempts: int, elapsed: float) -> None:
        """Record the terminal state of item ``index`` (exactly once per item)."""
        ...

    def succeed(self, index: int, item: Any, value: Any, elapsed: float) -> None:
        """:meth:`finish` for an item that succeeded on its first attempt (the common case)."""
        ...

    def identify(self, index: int, envelope_id: str) -> None:
        """Record the id of the envelope item ``index`` is sent as (before it ends)."""
        ...

    def snapshot(self, retries: int, elapsed: float) -> Progress:
        """The progress so far."""
        ...


class Recorder(Protocol):
    """Where a journaled run records terminal states (``aiofanout._journal.RunWriter``)."""

    def record(
        self, index: int, result: Attempt, attempts: int, elapsed: float, *, by_deadline: bool
    ) -> Attempt:
        """Record item ``index``'s terminal state; return what was recorded.

        ``by_deadline``: the run's deadline ended the item (expired its attempt in flight, or
        refused a retry it was owed), not the item's own attempts.
        """
        ...

    def item_key(self, index: int) -> str:
        """Item ``index``'s name for good, the same in every process of the run."""
        ...

    async def wait_for_room(self) -> None:
        """Return when the journal can take more records (it sets the pace when behind)."""
        ...


#: Items of a resumed run that ended before, by index: (their terminal state, attempts, seconds).
Replay = Mapping[int, tuple[Attempt, int, float]]


class TableSink:
    """Records outcomes in a :class:`Table`, read later as a ``FanoutResult``."""

    __slots__ = ("add", "succeed", "table")

    def identify(self, index: int, envelope_id: str) -> None:
        self.table.envelope_ids[index] = envelope_id

    def __init__(self) -> None:
        self.table = Table()
        self.add = self.table.add
        self.succeed = self.table.succeed

    @property
    def taken(self) -> int:
        return len(self.table.items)

    def finish(self, index: int, item: Any, result: Attempt, attempts: int, elapsed: float) -> None:
        code, value, error = result
        t = self.table
        t.status[index] = code
        t.values[index] = value
        if error is not None:
            t.errors[index] = error
        t.attempts[index] = attempts
        t.elapsed[index] = elapsed

    def snapshot(self, retries: int, elapsed: float) -> Progress:
        taken = self.taken
        status = self.table.status[:taken]  # the columns grow ahead of the rows taken
        counts = {s: status.count(code) for code, s in enumerate(STATUSES)}
        in_flight = status.count(PENDING)
        return Progress(taken, taken - in_flight, in_flight, counts, retries, elapsed)


class CountingSink:
    """Counts outcomes by status and keeps none: for runs whose outcomes live in a journal."""

    def __init__(self) -> None:
        self.counts = [0] * len(STATUSES)
        self.taken = 0

    def add(self, item: Any) -> int:
        self.taken += 1
        return self.taken - 1

    def finish(self, index: int, item: Any, result: Attempt, attempts: int, elapsed: float) -> None:
        self.counts[result[0]] += 1

    def succeed(self, index: int, item: Any, value: Any, elapsed: float) -> None:
        self.finish(index, item, (SUCCEEDED, value, None), 1, elapsed)

    def identify(self, index: int, envelope_id: str) -> None:
        """Counts only: the outcomes it would name are kept elsewhere (a journal)."""

    def snapshot(self, retries: int, elapsed: float) -> Progress:
        counts = dict(zip(STATUSES, self.counts, strict=True))
        done = sum(self.counts)
        return Progress(self.taken, done, self.taken - done, counts, retries, elapsed)


class StreamSink(CountingSink):
    """Hands outcomes to a consumer through a buffer of at most ``limit`` outcomes.

    The workers wait for room before taking an item, so a slow consumer slows them down.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.buffer: deque[Outcome[Any]] = deque()
        self.ready = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self.envelope_ids: dict[int, str] = {}  # of the items in flight sent as envelopes

    def identify(self, index: int, envelope_id: str) -> None:
        self.envelope_ids[index] = envelope_id

    def finish(self, index: int, item: Any, result: Attempt, attempts: int, elapsed: float) -> None:
        code, value, error = result
        self.counts[code] += 1
        envelope_id = self.envelope_ids.pop(index, None)
        outcome = Outcome(index, item, STATUSES[code], value, error, attempts, elapsed, envelope_id)
        self.buffer.append(outcome)
        self.ready.set()
        if len(self.buffer) >= self.limit:
            self.room.clear()

    async def wait_for_room(self) -> None:
        """Return once the consumer has room for another outcome."""
        await self.room.wait()

    def pop(self) -> Outcome[Any]:
        """The oldest outcome in the buffer (there must be one)."""
        outcome = self.buffer.popleft()
        if len(self.buffer) < self.limit:
            self.room.set()
        return outcome
