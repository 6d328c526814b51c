"""``resume`` with other items is refused, naming the first index that differs (issue 18, 13)."""

from __future__ import annotations

import asyncio
import shutil
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from aiofanout import Status, UsageError, dispatch_many
from aiofanout.durable import FileJournal, orchestrate, resume, resume_event
from aiofanout.testing import LambdaContext


async def _half_done(tmp_path: Path, n: int = 400, **options: int) -> tuple[FileJournal, str]:
    """A run of ``range(n)`` whose odd items failed: a resume has something to do."""

    async def evens(x: int) -> int:
        if x % 2:
            raise ValueError("odd")
        return 10 * x

    journal = FileJournal(tmp_path, **options)
    result = await dispatch_many(evens, range(n), concurrency=4, retry=1, journal=journal)
    assert result.run_id is not None
    assert result.counts[Status.SUCCEEDED] == n // 2
    return journal, result.run_id


async def test_items_in_another_order_are_refused_at_the_first_index_that_differs(
    tmp_path: Path,
) -> None:
    journal, run_id = await _half_done(tmp_path)
    ran: list[int] = []

    async def work(x: int) -> int:
        ran.append(x)
        return 10 * x

    with pytest.raises(UsageError, match=r"item 0 is not the item the run had at index 0"):
        await resume(run_id, work, reversed(range(400)), concurrency=4, journal=journal)
    assert ran == []  # nothing ran under another item's index
    result = await resume(run_id, work, range(400), concurrency=4, journal=journal)
    assert result.values() == [10 * x for x in range(400)]
    assert sorted(ran) == list(range(1, 400, 2))


@pytest.mark.slow
async def test_one_changed_item_deep_in_a_long_run_is_named_and_memory_stays_flat(
    tmp_path: Path,
) -> None:
    journal, run_id = await _half_done(tmp_path, n=20_000, part_records=100)
    assert len(list((tmp_path / run_id / "inputs").glob("*.fp"))) > 10  # many chunks
    items = [*range(13_337), "changed", *range(13_338, 20_000)]

    async def work(x: int) -> int:
        return 0

    tracemalloc.start()
    try:
        with pytest.raises(UsageError, match=r"item 13337 is not"):
            await resume(run_id, work, iter(items), concurrency=4, journal=journal)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The replayed successes are in memory either way; the fingerprints are read a chunk at a
    # time (all of them at once would be 160 KB more, an item per index of a list far more).
    assert peak < 12 * 2**20


async def test_more_or_fewer_items_than_the_run_had_are_refused(tmp_path: Path) -> None:
    journal, run_id = await _half_done(tmp_path)
    ran: Counter[int] = Counter()

    async def work(x: int) -> int:
        ran[x] += 1
        return 10 * x

    with pytest.raises(UsageError, match=r"had 400 items; these have more \(index 400\)"):
        await resume(run_id, work, range(500), concurrency=4, journal=journal)
    assert not [x for x in ran if x >= 400]  # the 100 new items never ran
    with pytest.raises(UsageError, match=r"had at least 400 items; these end after 300"):
        await resume(run_id, work, range(300), concurrency=4, journal=journal)
    result = await resume(run_id, work, range(400), concurrency=4, journal=journal)
    assert result.counts[Status.SUCCEEDED] == 400


async def test_a_journal_from_before_fingerprints_still_resumes(tmp_path: Path) -> None:
    journal, run_id = await _half_done(tmp_path)
    shutil.rmtree(tmp_path / run_id / "inputs")

    async def work(x: int) -> int:
        return 10 * x

    result = await resume(run_id, work, range(400), concurrency=4, journal=journal)
    assert result.values() == [10 * x for x in range(400)]
    assert (tmp_path / run_id / "inputs" / "end.json").exists()  # checked from now on


async def test_items_that_are_not_json_are_compared_by_their_repr(tmp_path: Path) -> None:
    class Point:
        def __init__(self, x: int) -> None:
            self.x = x

        def __repr__(self) -> str:
            return f"Point({self.x})"

    async def x_of(p: Point) -> int:
        return p.x

    journal = FileJournal(tmp_path)
    result = await dispatch_many(x_of, [Point(1), Point(2)], concurrency=2, journal=journal)
    assert result.run_id is not None
    with pytest.raises(UsageError, match="item 1 is not"):
        await resume(result.run_id, x_of, [Point(1), Point(3)], concurrency=2, journal=journal)
    again = await resume(result.run_id, x_of, [Point(1), Point(2)], concurrency=2, journal=journal)
    assert again.values() == [1, 2]


async def test_a_continued_run_whose_source_changed_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9")  # no self-invoke leaves
    journal = FileJournal(tmp_path)
    first_time = {0}

    async def work(n: int) -> int:
        # Item 0 is still running at the first invocation's hard stop: the next one starts at
        # it, and replays the items after it that the journal has.
        slow = n in first_time
        first_time.discard(n)
        await asyncio.sleep(30 if slow else 0.01)
        return n

    first = await orchestrate(
        work, range(200), event={}, context=LambdaContext(remaining_ms=4_000), journal=journal,
        concurrency=2, margin=2.0, max_invocations=1, run_id="changed",
    )  # fmt: skip
    assert first["state"] == "budget_exhausted"
    assert first["counts"]["succeeded"] > 0
    with pytest.raises(UsageError, match=r"item 0 is not the item the run had at index 0"):
        await orchestrate(
            work, [x + 1 for x in range(200)], event=resume_event("changed"),
            context=LambdaContext(remaining_ms=12_000), journal=journal, concurrency=2, margin=2.0,
        )  # fmt: skip
    last = await orchestrate(
        work, range(200), event=resume_event("changed"), context=LambdaContext(remaining_ms=12_000),
        journal=journal, concurrency=2, margin=2.0,
    )  # fmt: skip
    assert last["state"] == "finished"
    assert last["counts"] == {"succeeded": 200}
