"""The run journal and resume: terminal states recorded as items end, a run finished later.

Through a real directory, a real moto S3, and a real process killed with SIGKILL mid-run.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from aiofanout import FileJournal, S3Journal, Status, UsageError, dispatch_many, resume, stream
from aiofanout.errors import JournalError, NotFound, RecordedError
from aiofanout.targets import Target
from aiofanout.testing import MotoServer, eventually, eventually_sync

HERE = Path(__file__).parent


class Counted:
    """An async task that counts its executions per item, and can be told to fail some."""

    def __init__(self, fail: set[int] | None = None) -> None:
        self.runs: Counter[int] = Counter()
        self.fail = fail or set()

    async def __call__(self, item: int) -> dict[str, int]:
        self.runs[item] += 1
        await asyncio.sleep(0)
        if item in self.fail:
            raise RuntimeError(f"item {item} failed on purpose")
        return {"square": item * item}


async def test_a_journaled_run_records_every_item_and_writes_a_manifest(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path, part_records=64)
    work = Counted(fail={3, 77})
    result = await dispatch_many(work, range(300), concurrency=8, retry=1, journal=journal)
    assert result.run_id is not None
    assert result.manifest is not None
    assert result.counts[Status.SUCCEEDED] == 298
    manifest = await journal.manifest(result.run_id)
    assert manifest == result.manifest
    assert manifest["counts"] == {"succeeded": 298, "failed": 2}
    assert len(manifest["results"]["succeeded"]) == 5  # 298 lines, 64 per part
    outcomes = [o async for o in journal.results(result.run_id)]
    assert sorted(o.index for o in outcomes) == list(range(300))
    by_index = {o.index: o for o in outcomes}
    assert by_index[12].value == {"square": 144}
    failed = by_index[77].error
    assert isinstance(failed, RecordedError)
    assert failed.type_name == "RuntimeError"
    assert "item 77 failed on purpose" in str(failed)


async def test_items_that_never_wait_still_let_the_journal_write_a_part_at_a_time(
    tmp_path: Path,
) -> None:
    async def instant(item: int) -> int:  # never gives the event loop a turn on its own
        return item

    journal = FileJournal(tmp_path, part_records=100, flush_every=60)
    result = await dispatch_many(instant, range(5_000), concurrency=8, journal=journal, run_id="r")
    assert result.ok
    sizes = [
        len(part.read_bytes().splitlines()) for part in sorted((tmp_path / "r" / "parts").iterdir())
    ]
    assert sum(sizes) == 5_000
    # What a crash may lose stays about a part: the workers waited for the writer to catch up.
    assert max(sizes) <= 100 + 8


@pytest.mark.slow
async def test_a_store_that_refuses_parts_is_tried_again_at_its_pace_and_the_run_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def instant(item: int) -> int:
        return item

    (tmp_path / "refused").mkdir()
    (tmp_path / "refused" / "parts").write_text("a file where the parts would go")
    journal = FileJournal(tmp_path, part_records=100, flush_every=60)
    with pytest.raises(JournalError, match="could not write journal part"):
        await dispatch_many(instant, range(3_000), concurrency=8, journal=journal, run_id="refused")
    tries = [r for r in caplog.records if "trying again at the next flush" in r.getMessage()]
    # A try when the first part was due and one as the run closed, none between: the workers
    # did not wait on a writer that fails, nor wake it for every part's worth of items (30).
    assert len(tries) <= 2


class Shaped(Target):
    """A target of a user's own, with a key-aware prepare."""

    def prepare(self, item: Any) -> Any:
        return {"item": item}

    def prepare_keyed(self, item: Any, key: str) -> Any:
        return {"item": item, "key": key}

    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        return payload


class Reshaped(Shaped):
    """A subclass written against prepare() alone: journaled runs keep calling it."""

    def prepare(self, item: Any) -> Any:
        return {"reshaped": item}


async def test_a_target_gets_the_key_unless_its_subclass_overrides_only_prepare(
    tmp_path: Path,
) -> None:
    journal = FileJournal(tmp_path)
    keyed = await dispatch_many(Shaped(), ["x"], concurrency=1, journal=journal, run_id="k")
    token = (await journal.check_run("k"))["token"]
    assert keyed.values() == [{"item": "x", "key": f"k:{token}:0"}]
    kept = await dispatch_many(Reshaped(), ["x"], concurrency=1, journal=journal, run_id="p")
    assert kept.values() == [{"reshaped": "x"}]


def test_a_manifest_reads_lines_it_did_not_write_itself(tmp_path: Path) -> None:
    (tmp_path / "hand" / "parts").mkdir(parents=True)
    (tmp_path / "hand" / "parts" / "00000-1-w-00001.jsonl").write_text(
        '{"s": "succeeded", "i": 0, "v": 1}\n'  # keys in another order: read in full
        '{"i":1,"s":"failed","e":{"type":"E","message":"m"},"a":1,"t":0.1}\n'
        "\n"
        '{"i":2,"s":"succeeded","v":"x"}'  # no newline at the end of the part
    )
    journal = FileJournal(tmp_path)
    manifest = asyncio.run(journal.write_manifest("hand"))
    assert manifest["counts"] == {"succeeded": 2, "failed": 1}
    torn = tmp_path / "hand" / "parts" / "00000-1-w-00002.jsonl"
    for line in ('{"i":3,"s":"succ', '{"i":3,"s":"succeeded","v":', '{"i":007,"s":"failed"}'):
        torn.write_text(line)
        with pytest.raises(JournalError, match=r"00002\.jsonl, line 1"):
            asyncio.run(journal.write_manifest("hand"))


async def test_resume_runs_only_what_did_not_succeed_and_returns_one_whole_result(
    tmp_path: Path,
) -> None:
    journal = FileJournal(tmp_path)
    first = Counted(fail={5, 6, 250})
    before = await dispatch_many(first, range(400), concurrency=16, retry=1, journal=journal)
    assert before.run_id is not None
    assert before.counts[Status.FAILED] == 3

    second = Counted()
    after = await resume(before.run_id, second, range(400), concurrency=16, journal=journal)
    assert set(second.runs) == {5, 6, 250}  # nothing that succeeded ran again
    assert after.ok
    assert len(after) == 400
    assert after.values() == [{"square": i * i} for i in range(400)]
    assert after.run_id == before.run_id
    assert after.manifest is not None
    assert after.manifest["counts"] == {"succeeded": 400}
    # The replayed outcomes keep what the journal says of them.
    assert after[7].attempts == 1
    assert after[7].item == 7


async def test_a_cancelled_run_keeps_what_ended_and_resume_finishes_it(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path, flush_every=0.05)
    run_id = "cancelled-run"
    gate, hundred_done = asyncio.Event(), asyncio.Event()
    work = Counted()

    async def slow(item: int) -> dict[str, int]:
        if item >= 100:
            hundred_done.set()  # items are taken in order: 0..99 were taken before
            await gate.wait()  # never set: these items are in flight or waiting at the cancel
        return await work(item)

    task = asyncio.create_task(
        dispatch_many(slow, range(1000), concurrency=10, journal=journal, run_id=run_id)
    )
    await hundred_done.wait()
    # The last of 0..99 finish within a few loop turns.
    await eventually(lambda: len(work.runs) >= 100, interval=0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    again = Counted()
    result = await resume(run_id, again, range(1000), concurrency=10, journal=journal)
    assert result.ok
    assert len(result) == 1000
    assert not set(again.runs) & set(range(100))  # journaled at the cancel: not run again
    assert set(again.runs) == set(range(100, 1000))


def test_a_killed_process_loses_at_most_its_unwritten_part_and_resume_ends_everything(
    tmp_path: Path,
) -> None:
    # A real crash: the process is SIGKILLed mid-run; nothing runs in it afterwards.
    executions = tmp_path / "executions.log"
    journal_dir = tmp_path / "journal"
    script = HERE / "journal_scripts" / "journaled_run.py"
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, str(script), str(journal_dir), str(executions), "crash-run", "2000"],
        env=env,
    )
    try:
        eventually_sync(
            _progressed_while_alive(lambda: _lines(executions) >= 700, child),
            timeout=60,
            interval=0.02,
        )
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    journaled = asyncio.run(_succeeded_in_journal(journal_dir, "crash-run"))
    assert 0 < len(journaled) < 2000
    ran_before = Counter(_indexes(executions))

    asyncio.run(_resume_in_child_style(journal_dir, executions, "crash-run"))
    ran = Counter(_indexes(executions))
    assert set(ran) == set(range(2000))  # everything ended
    assert all(ran[i] == 1 for i in journaled)  # what succeeded did not run again
    assert all(ran[i] <= ran_before[i] + 1 for i in ran)


async def _succeeded_in_journal(journal_dir: Path, run_id: str) -> set[int]:
    journal = FileJournal(journal_dir)
    return set(await journal.final_records(run_id, succeeded_only=True))


async def _resume_in_child_style(journal_dir: Path, executions: Path, run_id: str) -> None:
    sys.path.insert(0, str(HERE / "journal_scripts"))
    try:
        from journaled_run import LoggedTask  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    task = LoggedTask(executions, delay=0.0)
    journal = FileJournal(journal_dir)
    result = await resume(run_id, task, range(2000), concurrency=20, journal=journal)
    assert result.ok
    assert result.values() == [i * 3 for i in range(2000)]


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _indexes(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()]


def _progressed_while_alive(condition: Any, child: subprocess.Popen[bytes]) -> Callable[[], bool]:
    """``condition``, which fails at once if ``child`` ends before it holds."""

    def progressed() -> bool:
        if condition():
            return True
        assert child.poll() is None, "the journaled run ended before it could be killed"
        return False

    return progressed


async def test_values_that_are_not_json_fail_their_item_in_the_result_and_the_journal(
    tmp_path: Path,
) -> None:
    async def returns_a_set(item: int) -> Any:
        return {item} if item == 2 else item

    journal = FileJournal(tmp_path)
    result = await dispatch_many(returns_a_set, range(4), concurrency=2, journal=journal)
    assert [o.status for o in result] == [Status.SUCCEEDED] * 2 + [Status.FAILED, Status.SUCCEEDED]
    assert isinstance(result[2].error, UsageError)
    assert "not JSON" in str(result[2].error)
    assert result.manifest is not None
    assert result.manifest["counts"]["failed"] == 1


async def test_misuse_is_refused_with_what_to_do(tmp_path: Path) -> None:
    journal = FileJournal(tmp_path)

    async def echo(item: int) -> int:
        return item

    await dispatch_many(echo, range(3), concurrency=2, journal=journal, run_id="taken")
    with pytest.raises(UsageError, match=r"already exists.*resume"):
        await dispatch_many(echo, range(3), concurrency=2, journal=journal, run_id="taken")
    with pytest.raises(NotFound, match="no run 'missing'"):
        await resume("missing", echo, range(3), concurrency=2, journal=journal)
    with pytest.raises(UsageError, match="needs journal="):
        await resume("taken", echo, range(3), concurrency=2)
    with pytest.raises(UsageError, match="run_id must be"):
        await dispatch_many(echo, range(3), concurrency=2, journal=journal, run_id="../etc")
    with pytest.raises(UsageError, match="pass journal="):
        await dispatch_many(echo, range(3), concurrency=2, run_id="x")
    with pytest.raises(UsageError, match="FileJournal or an S3Journal"):
        await dispatch_many(echo, range(3), concurrency=2, journal=str(tmp_path))  # type: ignore[call-overload]
    with pytest.raises(UsageError, match="does not journal"):
        stream(echo, range(3), concurrency=2, journal=journal)


@pytest.fixture
async def bucket(moto: MotoServer, aioboto3_session: Any) -> AsyncIterator[str]:
    name = f"runs-{uuid.uuid4().hex[:10]}"
    async with aioboto3_session.client("s3", endpoint_url=moto.endpoint_url) as s3:
        await s3.create_bucket(Bucket=name)
        yield name


@pytest.mark.slow
async def test_an_s3_journal_resumes_a_run_and_streams_its_results(
    moto: MotoServer, bucket: str
) -> None:
    journal = S3Journal(bucket, prefix="fanouts", endpoint_url=moto.endpoint_url, part_records=50)
    first = Counted(fail={10, 11})
    before = await dispatch_many(first, range(200), concurrency=8, retry=1, journal=journal)
    assert before.run_id is not None
    assert before.manifest is not None
    assert before.manifest["location"] == f"s3://{bucket}/fanouts/{before.run_id}/"

    second = Counted()
    after = await resume(before.run_id, second, range(200), concurrency=8, journal=journal)
    assert set(second.runs) == {10, 11}
    assert after.ok
    assert after.values() == [{"square": i * i} for i in range(200)]
    outcomes = [o async for o in journal.results(before.run_id)]
    assert sorted(o.index for o in outcomes) == list(range(200))
    assert all(o.ok for o in outcomes)


class CountingSession:
    """An aioboto3 session that counts the clients entered and exited.

    Entering a client gives the event loop a turn first, as a session resolving credentials
    over the network would: calls made at once all find no client yet.
    """

    def __init__(self, session: Any) -> None:
        self.session = session
        self.entered = 0
        self.exited = 0

    def client(self, *args: Any, **kwargs: Any) -> Any:
        counts = self

        class Counted:
            def __init__(self) -> None:
                self.context = counts.session.client(*args, **kwargs)

            async def __aenter__(self) -> Any:
                counts.entered += 1
                await asyncio.sleep(0)
                return await self.context.__aenter__()

            async def __aexit__(self, *exc: Any) -> Any:
                counts.exited += 1
                return await self.context.__aexit__(*exc)

        return Counted()


async def test_an_s3_journal_first_used_by_many_calls_at_once_keeps_one_client(
    moto: MotoServer, bucket: str, aioboto3_session: Any
) -> None:
    session = CountingSession(aioboto3_session)
    journal = S3Journal(bucket, endpoint_url=moto.endpoint_url, session=session)
    async with journal:
        found = await asyncio.gather(*(journal.manifest(f"run-{n}") for n in range(5)))
        assert found == [None] * 5
    assert session.entered > 1  # the calls did race to open a client
    assert session.exited == session.entered  # every client opened was closed: none leaked


async def test_two_writers_racing_for_one_run_id_get_one_run(
    moto: MotoServer, bucket: str, tmp_path: Path
) -> None:
    for journal in (S3Journal(bucket, endpoint_url=moto.endpoint_url), FileJournal(tmp_path)):
        outcomes = await asyncio.gather(
            *(journal.start_run("race") for _ in range(5)), return_exceptions=True
        )
        assert sum(o == "race" for o in outcomes) == 1, journal
        assert sum(isinstance(o, UsageError) for o in outcomes) == 4


def test_the_manifest_is_json_a_reader_can_follow(tmp_path: Path) -> None:
    async def run() -> dict[str, Any]:
        async def echo(item: int) -> int:
            return item

        result = await dispatch_many(echo, range(10), concurrency=2, journal=FileJournal(tmp_path))
        assert result.manifest is not None
        return result.manifest

    manifest = asyncio.run(run())
    on_disk = json.loads((tmp_path / manifest["run_id"] / "manifest.json").read_text())
    assert on_disk["format"] == "aiofanout.manifest/1"
    (part,) = on_disk["results"]["succeeded"]
    lines = [json.loads(line) for line in (tmp_path / part).read_text().splitlines()]
    assert sorted(line["i"] for line in lines) == list(range(10))
    assert all(line["s"] == "succeeded" and line["v"] == line["i"] for line in lines)


async def test_in_a_manifest_a_success_outranks_a_later_failure_and_a_retry_an_earlier_one(
    tmp_path: Path,
) -> None:
    # A duplicate writer may journal an item again after it succeeded: the success stands. An
    # item that failed and later succeeded (a resume) counts as succeeded once.
    parts = tmp_path / "r" / "parts"
    parts.mkdir(parents=True)
    (parts / "00000-1-a-00001.jsonl").write_text(
        '{"i":0,"s":"succeeded","v":1,"a":1,"t":0}\n{"i":1,"s":"failed","e":{"type":"E"},"a":1,"t":0}\n'
    )
    (parts / "00000-2-b-00001.jsonl").write_text(
        '{"i":0,"s":"failed","e":{"type":"E"},"a":1,"t":0}\n{"i":1,"s":"succeeded","v":2,"a":2,"t":0}\n'
    )
    (tmp_path / "r" / "run.json").write_text("{}")
    manifest = await FileJournal(tmp_path).write_manifest("r")
    assert manifest["counts"] == {"succeeded": 2}
    values = sorted([(o.index, o.value) async for o in FileJournal(tmp_path).results("r")])
    assert values == [(0, 1), (1, 2)]
