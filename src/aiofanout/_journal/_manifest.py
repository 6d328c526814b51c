"""A run's manifest: its final outcomes, split into succeeded and failed parts.

Like the ResultWriter of Step Functions' Distributed Map: ``<run>/manifest.json`` names the
result parts (``<run>/results/succeeded-00000.jsonl``, ``failed-...``), each a JSONL file of
journal lines, one per item, in the order items ended. It is built from the journal in two
streamed passes, so memory holds a byte and an integer per item, never the values:

1. find each item's final record: a success wins; otherwise the latest part's record (a resumed
   run journals an item again after its failure);
2. copy each final record into the parts of its kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from array import array
from collections.abc import AsyncGenerator
from typing import Any

from .._errors import JournalError
from .._outcome import STATUSES, SUCCEEDED
from ._records import peek_lines
from ._storage import Storage
from ._writer import part_prefix

__all__ = [
    "COPIED",
    "MANIFEST_FORMAT",
    "UNSEEN",
    "final_statuses",
    "lines_of",
    "manifest_key",
    "write_manifest",
]

MANIFEST_FORMAT = "aiofanout.manifest/1"
UNSEEN = 255  # no record of this index yet
COPIED = 254  # its final record is in a result part already
READ_AHEAD = 8  # parts fetched at once while a manifest reads the journal
#: How far past the journal's line count an index may be (lines a crash lost, then resumed).
FAR_SLACK = 100_000


def manifest_key(run_id: str) -> str:
    """Where a run's manifest is."""
    return f"{run_id}/manifest.json"


async def write_manifest(
    storage: Storage, run_id: str, *, part_records: int = 10_000
) -> dict[str, Any]:
    """Build and write the manifest of ``run_id`` from its journal; the manifest written."""
    keys = await storage.keys(part_prefix(run_id))
    status, final_part = await final_statuses(storage, keys)
    results = _ResultParts(storage, run_id, part_records)
    async with contextlib.aclosing(lines_of(storage, keys)) as lines:
        async for number, raw, index, code in lines:
            if final_part[index] == number and status[index] == code:
                await results.add(code, raw)
                status[index] = COPIED
    await results.flush_all()
    manifest = {
        "format": MANIFEST_FORMAT,
        "run_id": run_id,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "location": storage.location + run_id + "/",
        "counts": results.counts,
        "items": sum(results.counts.values()),
        "results": results.keys,
    }
    await storage.put(manifest_key(run_id), json.dumps(manifest, indent=2).encode())
    return manifest


async def final_statuses(storage: Storage, keys: list[str]) -> tuple[bytearray, array[int]]:
    """Pass 1: each index's final status, and the number of the part holding it.

    The columns grow with the indexes read, but an index is bounded by the journal's own lines
    (each item of a run has a line): one far past every line read so far waits in ``far`` until
    the end, and one past the journal's line count is an error, not gigabytes of columns.
    """
    status = bytearray()
    final_part = array("I")
    far: dict[int, tuple[int, int, str]] = {}  # index: (code, part number, part key)
    lines_read = 0
    async with contextlib.aclosing(lines_of(storage, keys)) as lines:
        async for number, _, index, code in lines:
            lines_read += 1
            if index >= len(status):
                if index >= 2 * lines_read + FAR_SLACK:
                    known = far.get(index)
                    if known is None or known[0] != SUCCEEDED:
                        far[index] = (code, number, keys[number])
                    continue
                _grow(status, final_part, index + 1)
            if status[index] != SUCCEEDED:
                status[index] = code
                final_part[index] = number
    _merge_far(status, final_part, far, lines_read, storage.location)
    return status, final_part


def _grow(status: bytearray, final_part: array[int], size: int) -> None:
    grow = size - len(status)
    status.extend(bytes([UNSEEN]) * grow)
    final_part.extend(array("I", [0]) * grow)


def _merge_far(
    status: bytearray,
    final_part: array[int],
    far: dict[int, tuple[int, int, str]],
    lines_read: int,
    location: str,
) -> None:
    """Put the far indexes in the columns, once they are known to be within the run."""
    for index, (code, number, key) in sorted(far.items()):
        if index >= lines_read + FAR_SLACK:
            raise JournalError(
                f"{location}{key}: item index {index} is past the {lines_read} lines of the "
                "run's journal; the part was not written by aiofanout: move it out of the run"
            )
        if index >= len(status):
            _grow(status, final_part, index + 1)
        # A line read later for it, in the columns, may win.
        later = final_part[index] <= number or code == SUCCEEDED
        if status[index] != SUCCEEDED and later:
            status[index] = code
            final_part[index] = number


async def lines_of(
    storage: Storage, keys: list[str]
) -> AsyncGenerator[tuple[int, bytes, int, int], None]:
    """Each line of the parts, in order: its part's number, the line, its index and status.

    ``READ_AHEAD`` parts are fetched at once: on S3 a part is a round trip, and a manifest of a
    million items reads a thousand parts twice.
    """
    reads: dict[int, asyncio.Task[bytes | None]] = {}
    try:
        for number, key in enumerate(keys):
            for ahead in range(number, min(number + READ_AHEAD, len(keys))):
                if ahead not in reads:
                    reads[ahead] = asyncio.create_task(storage.get(keys[ahead]))
            data = await reads.pop(number)
            if data is None:  # listed a moment ago: only a deleted journal loses a part
                continue
            for raw, index, code in peek_lines(data, storage.location + key):
                yield number, raw, index, code
    finally:
        for read in reads.values():
            read.cancel()
        await asyncio.gather(*reads.values(), return_exceptions=True)


class _ResultParts:
    """The manifest's result parts being written, a part per ``part_records`` lines."""

    def __init__(self, storage: Storage, run_id: str, part_records: int) -> None:
        self.storage = storage
        self.run_id = run_id
        self.part_records = part_records
        self.pending: dict[str, list[bytes]] = {"succeeded": [], "failed": []}
        self.keys: dict[str, list[str]] = {"succeeded": [], "failed": []}
        self.counts: dict[str, int] = {}

    async def add(self, code: int, line: bytes) -> None:
        kind = "succeeded" if code == SUCCEEDED else "failed"
        status = STATUSES[code].value
        self.counts[status] = self.counts.get(status, 0) + 1
        lines = self.pending[kind]
        lines.append(line)
        if len(lines) >= self.part_records:
            await self._flush(kind)

    async def _flush(self, kind: str) -> None:
        lines = self.pending[kind]
        if not lines:
            return
        key = f"{self.run_id}/results/{kind}-{len(self.keys[kind]):05d}.jsonl"
        await self.storage.put(key, b"".join(lines))
        self.keys[kind].append(key)
        lines.clear()

    async def flush_all(self) -> None:
        for kind in self.pending:
            await self._flush(kind)
