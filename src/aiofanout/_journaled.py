"""A journaled run: one driver for ``dispatch_many(journal=...)``, ``resume``, ``orchestrate``.

Each of them runs the engine with every terminal state handed to a recorder (the run's
:class:`~aiofanout._journal.RunWriter`, or an ``orchestrate`` segment that translates its
indexes), items the journal already has replayed instead of run, and the writer flushed at the
end whatever happened, so what ended is on disk or in S3 before an error goes up.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Mapping
from typing import Any

from ._journal import JournalRecord, RunWriter
from ._options import Options
from ._run import Run
from ._sinks import Recorder, Replay, Sink

__all__ = ["JournaledRun", "replay_of"]


def replay_of(records: Mapping[int, JournalRecord], *, first: int = 0) -> Replay:
    """The journaled items at or past ``first``, by their index counted from ``first``."""
    return {
        index - first: (record.attempt(), record.attempts, record.elapsed)
        for index, record in records.items()
        if index >= first
    }


class JournaledRun:
    """The engine's :class:`Run` over ``items``, each end recorded, the journal flushed after.

    ``recorder`` receives each terminal state (default: ``writer`` itself); ``replay`` holds the
    items that ended in an earlier run, recorded as they were instead of run again; ``reader``,
    the generator that reads the input, is closed before the journal's last write.
    """

    def __init__(
        self,
        target: object,
        items: Iterable[Any] | AsyncIterable[Any],
        sink: Sink,
        options: Options,
        writer: RunWriter,
        *,
        recorder: Recorder | None = None,
        replay: Replay | None = None,
        reader: AsyncGenerator[Any, None] | None = None,
    ) -> None:
        self.writer = writer
        self.reader = reader
        self.run = Run(target, items, sink, options, journal=recorder or writer, replay=replay)

    async def execute(self) -> Run:
        """Run to the end; write what is buffered (also on error or cancellation)."""
        self.writer.start()
        try:
            await self.run.execute()
        finally:
            if self.reader is not None:
                await self.reader.aclose()
            await self.writer.aclose()
        return self.run
