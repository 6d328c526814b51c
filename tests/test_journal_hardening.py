"""The journal does not trust its files (issue 18, point 8)."""

from __future__ import annotations

import json
import os
import stat
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import pytest

from aiofanout import dispatch_many
from aiofanout.durable import FileJournal, S3Journal, resume
from aiofanout.errors import JournalError, NotFound


async def double(x: int) -> int:
    return 2 * x


async def _run(tmp_path: Path, n: int = 10) -> tuple[FileJournal, str]:
    journal = FileJournal(tmp_path)
    result = await dispatch_many(double, range(n), concurrency=2, journal=journal)
    assert result.run_id is not None
    return journal, result.run_id


def _add_part(
    tmp_path: Path, run_id: str, body: bytes, name: str = "00000-9-x-00001.jsonl"
) -> None:
    (tmp_path / run_id / "parts" / name).write_bytes(body)


async def test_a_huge_index_is_refused_without_allocating(tmp_path: Path) -> None:
    journal, run_id = await _run(tmp_path)
    _add_part(tmp_path, run_id, b'{"i":50000000,"s":"succeeded","v":1,"a":1,"t":0}\n')
    tracemalloc.start()
    try:
        with pytest.raises(JournalError, match=r"50000000.*move it out"):
            await journal.write_manifest(run_id)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # the old columns took +430 MiB


async def test_a_negative_index_is_refused(tmp_path: Path) -> None:
    journal, run_id = await _run(tmp_path)
    _add_part(tmp_path, run_id, b'{"i": -1, "s": "succeeded", "v": 1}\n')
    with pytest.raises(JournalError, match=r"line 1: item index -1"):
        await journal.write_manifest(run_id)
    with pytest.raises(JournalError, match="index -1"):
        await resume(run_id, double, range(10), concurrency=2, journal=journal)


async def test_a_stray_file_in_parts_is_a_journal_error(tmp_path: Path) -> None:
    journal, run_id = await _run(tmp_path)
    _add_part(tmp_path, run_id, b"my notes\n", name="notes.txt")
    with pytest.raises(JournalError, match=r"notes\.txt is not a journal part.*move it out"):
        await resume(run_id, double, range(10), concurrency=2, journal=journal)


async def test_a_manifest_key_outside_the_root_is_not_read(tmp_path: Path) -> None:
    root = tmp_path / "journal"
    journal, run_id = await _run(root)
    (tmp_path / "outside.jsonl").write_bytes(b'{"i":0,"s":"succeeded","v":"secret"}\n')
    manifest_path = root / run_id / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["results"]["succeeded"] = ["../outside.jsonl"]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(JournalError, match=r"outside\.jsonl"):
        async for _ in journal.results(run_id):
            pass
    with pytest.raises(JournalError, match="leaves the journal's root"):
        await journal.storage.get("../outside.jsonl")


async def test_files_are_0600_and_directories_0700(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        await _run(tmp_path / "j")
    finally:
        os.umask(old)
    paths = list((tmp_path / "j").rglob("*"))
    assert any(p.is_file() for p in paths)
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


async def test_s3_errors_are_journal_errors(moto: Any) -> None:
    journal = S3Journal(f"missing-{uuid.uuid4().hex[:8]}", endpoint_url=moto.endpoint_url)
    with pytest.raises(JournalError, match="check the bucket exists") as raised:
        await journal.start_run()
    translated = raised.value.__cause__  # the AWS core's error, chained to botocore's
    assert isinstance(translated, NotFound)
    assert type(translated.__cause__).__name__ in ("ClientError", "NoSuchBucket")
