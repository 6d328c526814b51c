"""``python -m aiofanout runs``: a journal's runs, read from a directory and from S3 (moto)."""

from __future__ import annotations

import asyncio
import collections
import csv
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from aiofanout import FileJournal, S3Journal, Status, TaskFailed, dispatch_many, resume
from aiofanout.testing import MotoServer

REGION = "us-east-1"


async def _sometimes_fails(n: int) -> dict[str, int]:
    if n % 4 == 0:
        raise TaskFailed(f"bad {n}", remote_type="ValueError")
    return {"n": n}


async def _fixed(n: int) -> dict[str, int]:
    return {"n": n}


@pytest.fixture(scope="module")
def journal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal of three runs: one ended, one resumed to success, one that died (no manifest)."""
    root = tmp_path_factory.mktemp("journal")

    async def write() -> None:
        journal = FileJournal(root)
        await dispatch_many(_sometimes_fails, range(10), concurrency=2, journal=journal,
                            run_id="ended", retry=1)  # fmt: skip
        await dispatch_many(_sometimes_fails, range(8), concurrency=2, journal=journal,
                            run_id="died", retry=1)  # fmt: skip
        await resume("died", _fixed, range(8), concurrency=2, journal=journal)

    asyncio.run(write())
    (root / "died" / "manifest.json").unlink()  # as if the resumed process died at its end
    return root


def main(argv: list[str]) -> int:
    from aiofanout._cli import main  # in-process: a subprocess per call would cost seconds

    return main(argv)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["runs", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_each_run_its_state_and_counts(
    journal_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "list", "--journal", str(journal_dir), "--json")
    assert code == 0
    rows = {row["run_id"]: row for row in map(json.loads, out.splitlines())}
    assert rows["ended"]["complete"] is True
    assert rows["ended"]["counts"] == {"failed": 3, "succeeded": 7}
    # read from its parts: the resumed successes win over the failures before them, once each
    assert rows["died"]["complete"] is False
    assert rows["died"]["counts"] == {"succeeded": 8}
    assert rows["died"]["started_at"] == pytest.approx(time.time(), abs=600)
    code, table, _ = run(capsys, "list", "--journal", str(journal_dir))
    assert table.splitlines()[0].split()[:3] == ["RUN", "STARTED", "(UTC)"]
    assert any(line.split()[0] == "died" and " open " in line for line in table.splitlines())


def test_show_gives_the_manifest_counts_and_first_failures(
    journal_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "show", "ended", "--journal", str(journal_dir), "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["manifest"]["format"] == "aiofanout.manifest/1"
    assert shown["items"] == 10
    assert [f["index"] for f in shown["first_failures"]] == [0, 4, 8]
    assert shown["first_failures"][0]["error_type"] == "TaskFailed"
    assert shown["first_failures"][0]["error_message"] == "ValueError: bad 0"
    code, text, _ = run(capsys, "show", "ended", "--journal", str(journal_dir), "--failures", "1")
    assert "first 1 failures:" in text
    assert "item 0: failed after 1 attempt: TaskFailed: ValueError: bad 0" in text
    assert "item 4" not in text


def test_failures_and_export_stream_every_final_record(
    journal_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "failures", "ended", "--journal", str(journal_dir), "--json")
    assert [json.loads(line)["index"] for line in out.splitlines()] == [0, 4, 8]
    code, out, _ = run(capsys, "export", "died", "--journal", str(journal_dir))
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted(r["index"] for r in rows) == list(range(8))
    assert all(r["status"] == "succeeded" and r["value"] == {"n": r["index"]} for r in rows)
    target = tmp_path / "ended.csv"
    run(
        capsys, "export", "ended", "--journal", str(journal_dir), "--format", "csv",
        "--output", str(target),
    )  # fmt: skip
    with target.open(newline="") as file:
        table = list(csv.DictReader(file))
    assert len(table) == 10
    by_index = {int(row["index"]): row for row in table}
    assert json.loads(by_index[3]["value"]) == {"n": 3}
    assert by_index[4]["status"] == "failed"
    assert by_index[4]["error_message"] == "ValueError: bad 4"


TRICKY = [{"a": 3, "t": 4}, ',"a":1,"t":2}', [{"v": None}], "é\u2028", 1.5e-7, None, {"e": {}}]


async def _tricky(n: int) -> Any:
    return TRICKY[n]


def test_export_copies_any_value_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(dispatch_many(_tricky, range(len(TRICKY)), concurrency=1,
                              journal=FileJournal(tmp_path), run_id="tricky"))  # fmt: skip
    _, out, _ = run(capsys, "export", "tricky", "--journal", str(tmp_path))
    rows = sorted(map(json.loads, out.splitlines()), key=lambda row: row["index"])
    assert [row["value"] for row in rows] == TRICKY
    assert all(row["attempts"] == 1 and row["elapsed"] >= 0 for row in rows)
    _, out, _ = run(capsys, "export", "tricky", "--journal", str(tmp_path), "--format", "csv")
    table = sorted(csv.DictReader(out.splitlines()), key=lambda row: int(row["index"]))
    assert [json.loads(row["value"]) for row in table] == TRICKY


def test_a_missing_run_or_journal_says_what_to_do(
    journal_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "show", "nonesuch", "--journal", str(journal_dir))
    assert code == 1
    assert "no run 'nonesuch'" in err
    code, _, err = run(capsys, "list", "--journal", str(journal_dir / "nowhere"))
    assert code == 2
    assert "no such directory" in err
    with pytest.raises(SystemExit):
        main(["runs", "--help"])
    help_text = capsys.readouterr().out
    assert "s3://BUCKET/PREFIX" in help_text
    assert "complete once its manifest is written" in help_text


def test_runs_read_an_s3_journal(moto: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    bucket = f"runs-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto.endpoint_url, region_name=REGION).create_bucket(
        Bucket=bucket
    )
    journal = S3Journal(bucket, "fanouts/", endpoint_url=moto.endpoint_url, region_name=REGION)
    asyncio.run(dispatch_many(_sometimes_fails, range(6), concurrency=2, journal=journal,
                              run_id="on-s3", retry=1))  # fmt: skip
    where = ["--journal", f"s3://{bucket}/fanouts", "--endpoint-url", moto.endpoint_url]
    code, out, err = run(capsys, "list", *where, "--region", REGION, "--json")
    assert code == 0, err
    [row] = map(json.loads, out.splitlines())
    assert row["run_id"] == "on-s3"
    assert row["counts"] == {"failed": 2, "succeeded": 4}
    code, out, _ = run(capsys, "failures", "on-s3", *where, "--region", REGION)
    assert out.splitlines() == [
        "item 0: failed after 1 attempt: TaskFailed: ValueError: bad 0",
        "item 4: failed after 1 attempt: TaskFailed: ValueError: bad 4",
    ]


# -- a million items -----------------------------------------------------------------------

MILLION = 1_000_000
# The CLI's own peak resident memory: VmHWM, this process's high-water mark since exec
# (getrusage's ru_maxrss keeps the forking parent's peak across exec on Linux).
PEAK_RSS = """
import runpy, sys
sys.argv = ["aiofanout", *sys.argv[1:]]
try:
    runpy.run_module("aiofanout", run_name="__main__")
finally:
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    print("peak-kib", peak, file=sys.stderr)
"""


async def _write_run(root: Path, run_id: str, items: int) -> None:
    """A run of ``items`` written with the journal's own writer, every 1000th item failed."""
    journal = FileJournal(root, part_records=50_000)
    await journal.start_run(run_id)
    writer = await journal.writer(run_id)
    succeeded, failed = list(Status).index(Status.SUCCEEDED), list(Status).index(Status.FAILED)
    error = TaskFailed("no thumbnail", remote_type="ValueError")
    for index in range(items):
        if index % 1000 == 999:
            writer.record(index, (failed, None, error), 3, 0.5, by_deadline=False)
        else:
            writer.record(index, (succeeded, index, None), 1, 0.01, by_deadline=False)
        if index % 50_000 == 49_999:
            await writer.flush()
    await writer.aclose()
    await journal.write_manifest(run_id)


def _cli(*argv: str, stdout: Any = subprocess.PIPE) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, "runs", *argv],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=True,
    )
    peak = int(done.stderr.rsplit("peak-kib", 1)[1])
    return (done.stdout or ""), peak


@pytest.mark.slow
def test_a_million_items_read_in_flat_memory(tmp_path: Path) -> None:
    asyncio.run(_write_run(tmp_path, "small", 100_000))  # parts of the same size, 10x fewer
    asyncio.run(_write_run(tmp_path, "million", MILLION))
    where = ["--journal", str(tmp_path)]

    listed, _ = _cli("list", *where, "--json")
    rows = {row["run_id"]: row for row in map(json.loads, listed.splitlines())}
    assert rows["million"]["counts"] == {"succeeded": MILLION - 1000, "failed": 1000}
    shown, _ = _cli("show", "million", *where, "--json", "--failures", "3")
    assert [f["index"] for f in json.loads(shown)["first_failures"]] == [999, 1999, 2999]

    with (tmp_path / "small.jsonl").open("w") as out:
        _, small_peak = _cli("export", "small", *where, stdout=out)
    with (tmp_path / "million.jsonl").open("w") as out:
        _, million_peak = _cli("export", "million", *where, stdout=out)
    with (tmp_path / "million.jsonl").open() as exported:
        [(lines, last)] = collections.deque(enumerate(exported, start=1), maxlen=1)
    assert lines == MILLION
    assert json.loads(last)["status"] == "failed"  # the failed part comes last
    # Memory follows the part size, not the run's: a million items held would be 50+ MiB more.
    assert million_peak - small_peak < 8 * 1024, (small_peak, million_peak)
