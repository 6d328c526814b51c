"""The run journal: where journaled fan-outs record each item's terminal state.

Layout, under the journal's root (a directory, or an S3 prefix)::

    <run_id>/run.json              created once, when the run starts (claims the run id)
    <run_id>/parts/*.jsonl         terminal states, a part per flush (see ``_writer.py``)
    <run_id>/inputs/*.fp, end.json a fingerprint per item read, its count (see ``_inputs.py``)
    <run_id>/manifest.json         the final outcomes, once the run ended (see ``_manifest.py``)
    <run_id>/results/*.jsonl       the manifest's succeeded and failed parts
    <run_id>/cursors/, claims/     a continued run's positions (``aiofanout.durable``)
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from .._errors import JournalError, NotFound, UsageError
from .._outcome import STATUSES, SUCCEEDED, Outcome
from ._inputs import InputLog
from ._manifest import manifest_key, write_manifest
from ._records import JournalRecord, split_lines
from ._storage import FileStorage, S3Storage, Storage
from ._writer import RunWriter, part_prefix

__all__ = ["FileJournal", "Journal", "S3Journal", "new_run_id"]

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def new_run_id() -> str:
    """A fresh run id: the UTC time it started, then random hex (sorts by start time)."""
    return time.strftime("%Y%m%dT%H%M%SZ-", time.gmtime()) + uuid.uuid4().hex[:12]


def check_run_id(run_id: object) -> str:
    """``run_id`` if it is a usable one (it names files and S3 keys); ``UsageError`` if not."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise UsageError(
            f"run_id must be 1-128 letters, digits, '.', '_' or '-' (not first), got {run_id!r}"
        )
    return run_id


class Journal:
    """Where a journaled fan-out records each item's terminal state, under a run id.

    Use :class:`FileJournal` (a local directory) or :class:`S3Journal` (an S3 bucket). One
    journal holds many runs. Its methods open what they need; ``async with journal:`` around
    several calls keeps one S3 client for all of them.

    Example::

        journal = FileJournal("runs/")
        result = await dispatch_many(work, items, concurrency=8, journal=journal)
        async for outcome in journal.results(result.run_id):
            print(outcome.index, outcome.status)
    """

    def __init__(self, storage: Storage, *, part_records: int = 1000, flush_every: float = 1.0):
        if part_records < 1 or not flush_every > 0:
            raise UsageError("a journal needs part_records >= 1 and flush_every > 0 seconds")
        self.storage = storage
        self.part_records = part_records
        self.flush_every = flush_every
        self._users = 0

    @property
    def location(self) -> str:
        """Where the journal is: a directory, or an ``s3://bucket/prefix/`` URL."""
        return self.storage.location

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.location}>"

    async def __aenter__(self) -> Journal:
        self._users += 1
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._users -= 1
        if self._users == 0:
            await self.storage.aclose()

    async def start_run(self, run_id: str | None = None) -> str:
        """Create a run (a fresh id unless ``run_id`` is given); its id."""
        run_id = new_run_id() if run_id is None else check_run_id(run_id)
        if not await self.ensure_run(run_id):
            raise UsageError(
                f"run {run_id!r} already exists in {self.location}: continue it with "
                f"aiofanout.resume({run_id!r}, ...), or give a new run_id"
            )
        return run_id

    async def ensure_run(self, run_id: str) -> bool:
        """Create the run unless it exists; whether it was created.

        The run gets a ``token`` of its own: a run id used again in another journal (a new
        directory or prefix) is another run, and its items get other idempotency keys.
        """
        meta = {
            "run_id": check_run_id(run_id),
            "token": uuid.uuid4().hex[:12],
            "started_at": time.time(),
        }
        async with self:
            return await self.storage.put_new(f"{run_id}/run.json", json.dumps(meta).encode())

    async def check_run(self, run_id: str) -> dict[str, Any]:
        """The run's record (its id, token and start); :class:`NotFound` if there is none."""
        async with self:
            found = await self.storage.get(f"{check_run_id(run_id)}/run.json")
        if found is None:
            raise NotFound(f"no run {run_id!r} in the journal at {self.location}")
        return dict(json.loads(found))

    async def writer(self, run_id: str, *, generation: int = 0) -> RunWriter:
        """A writer of the run's parts (``generation``: see :class:`RunWriter`)."""
        run = await self.check_run(run_id)
        return RunWriter(
            self.storage,
            run_id,
            token=str(run.get("token", "")),
            generation=generation,
            part_records=self.part_records,
            flush_every=self.flush_every,
            inputs=await InputLog.open(self.storage, run_id),
        )

    async def final_records(
        self, run_id: str, *, since_generation: int = 0, succeeded_only: bool = False
    ) -> dict[int, JournalRecord]:
        """Each journaled item's final record (a success wins; else the latest), by index."""
        final: dict[int, JournalRecord] = {}
        async with self:
            keys = await self.storage.keys(part_prefix(run_id))
            for key in keys:
                generation = _generation(key, self.location)
                if generation < since_generation:
                    continue
                data = await self.storage.get(key) or b""
                for _, record in split_lines(data, self.location + key):
                    if succeeded_only and record.status != SUCCEEDED:
                        continue
                    known = final.get(record.index)
                    if known is None or known.status != SUCCEEDED:
                        final[record.index] = record
        return final

    async def write_manifest(self, run_id: str) -> dict[str, Any]:
        """Write the run's manifest from its journal; the manifest (see :meth:`manifest`)."""
        async with self:
            return await write_manifest(self.storage, run_id, part_records=self.part_records)

    async def manifest(self, run_id: str) -> dict[str, Any] | None:
        """The run's manifest (``None`` before its end): counts and result part keys.

        ``{"run_id", "counts": {"succeeded": n, "failed": n, ...}, "items": n,
        "results": {"succeeded": [keys], "failed": [keys]}, "location", ...}``; the keys are
        relative to the journal's location.
        """
        async with self:
            data = await self.storage.get(manifest_key(check_run_id(run_id)))
        return None if data is None else dict(json.loads(data))

    async def results(self, run_id: str) -> AsyncIterator[Outcome[Any]]:
        """The run's final outcomes from its manifest, streamed a part at a time.

        Outcomes come succeeded first, then the rest, each in the order they ended; ``item`` is
        ``None`` (the journal keeps indexes, not inputs) and errors are :class:`RecordedError`.
        """
        async with self:
            manifest = await self.manifest(run_id)
            if manifest is None:
                raise NotFound(f"run {run_id!r} has no manifest in {self.location} (yet)")
            for kind in ("succeeded", "failed"):
                for key in result_keys(manifest, kind, run_id, self.location):
                    data = await self.storage.get(key) or b""
                    for _, record in split_lines(data, self.location + key):
                        yield _outcome(record)


def _generation(key: str, location: str) -> int:
    """The generation a part's name starts with; :class:`JournalError` for a foreign file."""
    head = key.rpartition("/")[2].split("-", 1)[0]
    if not head.isdigit() or not key.endswith(".jsonl"):
        raise JournalError(
            f"{location}{key} is not a journal part (aiofanout names them "
            "<generation>-<time>-<writer>-<sequence>.jsonl): move it out of the run's parts/"
        )
    return int(head)


def result_keys(manifest: dict[str, Any], kind: str, run_id: str, location: str) -> list[str]:
    """The manifest's result parts of ``kind``, each checked to be this run's."""
    keys = manifest.get("results", {}).get(kind, [])
    for key in keys:
        if not isinstance(key, str) or not key.startswith(f"{run_id}/results/"):
            raise JournalError(
                f"{location}{manifest_key(run_id)} names result part {key!r}, which is not "
                f"under {run_id}/results/: the manifest was altered; write it again with "
                "journal.write_manifest(run_id)"
            )
    return list(keys)


def _outcome(record: JournalRecord) -> Outcome[Any]:
    status, value, error = record.attempt()
    return Outcome(
        record.index, None, STATUSES[status], value, error, record.attempts, record.elapsed
    )


class FileJournal(Journal):
    """A journal in a local directory, for fan-outs in one machine's processes.

    Example::

        journal = FileJournal("runs/")
        result = await dispatch_many(work, items, concurrency=8, journal=journal)
        # after a crash: result = await resume(run_id, work, items, journal=journal, concurrency=8)
    """

    def __init__(
        self, path: str | os.PathLike[str], *, part_records: int = 1000, flush_every: float = 1.0
    ) -> None:
        super().__init__(FileStorage(path), part_records=part_records, flush_every=flush_every)


class S3Journal(Journal):
    """A journal in an S3 bucket, under ``prefix``: for Lambda orchestrators and fleets.

    The credentials need ``s3:PutObject``, ``s3:GetObject`` and ``s3:ListBucket`` there.

    Example::

        journal = S3Journal("my-runs-bucket", prefix="fanouts/")
        result = await dispatch_many(target, items, concurrency=100, journal=journal)
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "aiofanout/runs/",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        session: Any = None,
        part_records: int = 1000,
        flush_every: float = 1.0,
    ) -> None:
        storage = S3Storage(
            bucket, prefix, endpoint_url=endpoint_url, region_name=region_name, session=session
        )
        super().__init__(storage, part_records=part_records, flush_every=flush_every)
