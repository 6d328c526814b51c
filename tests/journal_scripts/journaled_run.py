"""A journaled fan-out in its own process, killed mid-run by a test (test_journal.py).

Each execution appends the item's index to a log with one O_APPEND write, which survives the
process's death: the side channel that counts executions.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from aiofanout import FileJournal, dispatch_many


class LoggedTask:
    """Log the item, then return three times it."""

    def __init__(self, log: Path, delay: float) -> None:
        self.fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.delay = delay

    async def __call__(self, item: int) -> int:
        os.write(self.fd, f"{item}\n".encode())
        await asyncio.sleep(self.delay)
        return item * 3


async def main(journal_dir: str, log: str, run_id: str, count: int) -> None:
    journal = FileJournal(journal_dir, part_records=100, flush_every=0.2)
    task = LoggedTask(Path(log), delay=0.01)
    await dispatch_many(task, range(count), concurrency=20, journal=journal, run_id=run_id)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
