"""Reading a journal's runs for people and tools: the runs, one run's summary, its final records.

Memory stays flat in the number of items, values never held: a run that ended is read from its
manifest's result parts, a part at a time; a run still open (or one that died) from its
journal's parts, in the manifest's own two passes (a byte and an integer per item, see
``_manifest.py``) so that an item journaled again by a resume counts once, as its final record.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from .._errors import JournalError, NotFound
from .._outcome import STATUSES, SUCCEEDED
from ._journal import Journal, check_run_id, result_keys
from ._manifest import UNSEEN, final_statuses, lines_of, manifest_key
from ._records import JournalRecord, records_of
from ._writer import part_prefix

__all__ = [
    "EXPORT_COLUMNS",
    "FinalPart",
    "RunSummary",
    "export_row",
    "final_parts",
    "run_ids",
    "run_summary",
]

#: The columns of an exported record, in order (``value`` as JSON text in CSV).
EXPORT_COLUMNS = (
    "index",
    "status",
    "value",
    "error_type",
    "error_message",
    "attempts",
    "elapsed",
)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """A run as ``runs list`` and ``runs show`` report it."""

    run_id: str
    started_at: float | None
    #: Whether the run ended (its manifest is written); else it is running, or it died.
    complete: bool
    #: Items by final status, over the items journaled (skipped items are never journaled).
    counts: dict[str, int]
    manifest: dict[str, Any] | None

    @property
    def items(self) -> int:
        """How many items the journal holds a final record of."""
        return sum(self.counts.values())

    def as_json(self) -> dict[str, Any]:
        """The summary as plain JSON (for ``--json``)."""
        return {
            "run_id": self.run_id,
            "started_at": self.started_at,
            "complete": self.complete,
            "items": self.items,
            "counts": self.counts,
            "manifest": self.manifest,
        }


async def run_ids(journal: Journal) -> list[str]:
    """The ids of the journal's runs, oldest first for generated ids (they start with a time)."""
    async with journal:
        folders = await journal.storage.folders()
    return [name for name in folders if _is_run_id(name)]


def _is_run_id(name: str) -> bool:
    try:
        check_run_id(name)
    except ValueError:
        return False
    return True


async def run_summary(journal: Journal, run_id: str) -> RunSummary:
    """The run's start, whether it ended, and its counts by final status."""
    async with journal:
        meta = await _run_meta(journal, run_id)
        manifest = await journal.manifest(run_id)
        if manifest is not None:
            counts = {str(k): int(v) for k, v in manifest.get("counts", {}).items()}
        else:
            counts = await _counts_from_parts(journal, run_id)
    started = meta.get("started_at")
    return RunSummary(
        run_id,
        float(started) if isinstance(started, int | float) else None,
        manifest is not None,
        counts,
        manifest,
    )


async def _run_meta(journal: Journal, run_id: str) -> dict[str, Any]:
    data = await journal.storage.get(f"{check_run_id(run_id)}/run.json")
    if data is not None:
        return dict(json.loads(data))
    if await journal.storage.get(manifest_key(run_id)) is None:
        raise NotFound(f"no run {run_id!r} in the journal at {journal.location}")
    return {}


async def _counts_from_parts(journal: Journal, run_id: str) -> dict[str, int]:
    keys = await journal.storage.keys(part_prefix(run_id))
    status, _ = await final_statuses(journal.storage, keys)
    return {s.value: n for code, s in enumerate(STATUSES) if (n := status.count(code))}


@dataclass(frozen=True, slots=True)
class FinalPart:
    """Final records of a run, one part's worth, as the journal's lines (``data``).

    ``where`` names the part in errors. Lines in the exact shape :func:`encode_record` writes
    a success in (nearly all of them) are exported by rewriting their text, the value's JSON
    copied as it is: about ten times faster than parsing and encoding each (``peek_lines``
    reads a journal the same way); any other line is parsed.
    """

    data: bytes
    where: str

    def records(self) -> list[JournalRecord]:
        """The records, parsed."""
        return records_of(self.data, self.where)

    def jsonl(self) -> str:
        """The records as export JSON lines (the columns of :data:`EXPORT_COLUMNS`)."""
        out: list[bytes] = []
        for raw in self.data.splitlines():
            success = _SUCCESS.fullmatch(raw)
            if success is not None:
                out.append(_SUCCESS_JSONL % success.groups())
            elif raw.strip():
                [record] = records_of(raw, self.where)
                out.append(_ENCODE(export_row(record)).encode() + b"\n")
        return b"".join(out).decode()

    def csv_rows(self) -> list[tuple[Any, ...]]:
        """The records as CSV rows: the columns of :data:`EXPORT_COLUMNS`, value as JSON."""
        rows: list[tuple[Any, ...]] = []
        for raw in self.data.splitlines():
            success = _SUCCESS.fullmatch(raw)
            if success is not None:
                index, value, attempts, elapsed = success.groups()
                rows.append((int(index), "succeeded", value.decode(), "", "", int(attempts),
                             elapsed.decode()))  # fmt: skip
            elif raw.strip():
                [record] = records_of(raw, self.where)
                row = export_row(record)
                row["value"] = "" if row["value"] is None else _ENCODE(row["value"])
                rows.append(tuple(row[column] for column in EXPORT_COLUMNS))
        return rows


#: A success as ``encode_record`` writes it: index, value, attempts, seconds, in this order.
#: Matched whole (``fullmatch``): the value's JSON is all that lies between ``"v":`` and the
#: line's own ``,"a":N,"t":N}`` at its very end, whatever the value holds.
_SUCCESS = re.compile(rb'\{"i":(0|[1-9]\d*),"s":"succeeded","v":(.*),"a":(\d+),"t":([-+.eE\d]+)\}')
_SUCCESS_JSONL = (
    b'{"index":%s,"status":"succeeded","value":%s,"error_type":null,"error_message":null,'
    b'"attempts":%s,"elapsed":%s}\n'
)
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


async def final_parts(
    journal: Journal, run_id: str, *, failures_only: bool = False
) -> AsyncGenerator[FinalPart, None]:
    """Each item's final record, streamed a part at a time: what succeeded, then the rest.

    Within a kind, records come in the order items ended. ``failures_only``: only the items
    that did not succeed.
    """
    async with journal:
        await _run_meta(journal, run_id)
        manifest = await journal.manifest(run_id)
        if manifest is not None:
            parts = _from_manifest(journal, run_id, manifest, failures_only)
        else:
            parts = _from_parts(journal, run_id, failures_only)
        async with contextlib.aclosing(parts) as each:
            async for part in each:
                yield part


async def _from_manifest(
    journal: Journal, run_id: str, manifest: dict[str, Any], failures_only: bool
) -> AsyncGenerator[FinalPart, None]:
    kinds = ("failed",) if failures_only else ("succeeded", "failed")
    for kind in kinds:
        for key in result_keys(manifest, kind, run_id, journal.location):
            data = await journal.storage.get(key)
            if data is None:
                raise JournalError(
                    f"{journal.location}{key}, a result part its manifest names, is gone: "
                    f"write the manifest again with journal.write_manifest({run_id!r})"
                )
            yield FinalPart(data, journal.location + key)


async def _from_parts(
    journal: Journal, run_id: str, failures_only: bool
) -> AsyncGenerator[FinalPart, None]:
    """Pass 1 finds each item's final record, pass 2 yields it (as ``write_manifest`` does)."""
    storage = journal.storage
    keys = await storage.keys(part_prefix(run_id))
    status, final_part = await final_statuses(storage, keys)
    part: list[bytes] = []
    part_number = 0
    async with contextlib.aclosing(lines_of(storage, keys)) as lines:
        async for number, raw, index, code in lines:
            if number != part_number and part:
                yield FinalPart(b"".join(part), storage.location + keys[part_number])
                part = []
            part_number = number
            final = final_part[index] == number and status[index] == code
            if final and not (failures_only and code == SUCCEEDED):
                status[index] = UNSEEN  # taken: a duplicate line of it later is not final
                part.append(raw)
    if part:
        yield FinalPart(b"".join(part), storage.location + keys[part_number])


def export_row(record: JournalRecord) -> dict[str, Any]:
    """One exported record, with the columns of :data:`EXPORT_COLUMNS`."""
    error = record.error or {}
    return {
        "index": record.index,
        "status": STATUSES[record.status].value,
        "value": record.value if record.status == SUCCEEDED else None,
        "error_type": error.get("type"),
        "error_message": error.get("message"),
        "attempts": record.attempts,
        "elapsed": record.elapsed,
    }
