"""What a run journal costs per item, and the memory of a manifest at a million items.

    python benchmarks/journal.py [--write] [--repeats 5] [--items 100000]

(1) ``dispatch_many`` of ``--items`` jobs that ``await asyncio.sleep(0)`` at cap 100: without a
journal; with ``FileJournal`` (a temporary directory); with ``S3Journal`` on a moto server
started here. A journaled run records every item, writes a part per 1,000 items in the
background and its manifest at the end, all inside the time measured.
(2) A journal of 10k, 100k and 1M items (values of about 60 bytes), then, each in a fresh
process: ``journal.write_manifest(run_id)`` and streaming ``journal.results(run_id)``; their
peak RSS (VmHWM) beside a process that only imports aiofanout.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from _bench import Measure, arguments, machine, own_peak_rss_mb, publish, table

from aiofanout import FileJournal, S3Journal, dispatch_many
from aiofanout.testing import FAKE_CREDENTIALS, MotoServer

CAP = 100
SIZES = (10_000, 100_000, 1_000_000)
MEMORY_BAR_MIB = 20.0


async def job(n: int) -> int:
    await asyncio.sleep(0)
    return n


async def value_job(n: int) -> dict[str, object]:
    """A value of about 60 bytes, so the journal's lines are not trivially small."""
    return {"n": n, "label": f"item-{n:09d}", "ok": True}


def run_plain(items: int) -> float:
    async def go() -> None:
        result = await dispatch_many(job, range(items), concurrency=CAP)
        assert result.ok

    asyncio.run(go())
    return 0.0


def run_journaled(make_journal: Callable[[], FileJournal | S3Journal], items: int) -> float:
    """One journaled run (its manifest written at its end); then the seconds a rebuild of the
    manifest takes, to show what share of the run it is.
    """

    async def go() -> float:
        journal = make_journal()
        run_id = uuid.uuid4().hex
        result = await dispatch_many(
            job, range(items), concurrency=CAP, journal=journal, run_id=run_id
        )
        assert result.ok
        assert result.manifest is not None
        assert result.manifest["counts"] == {"succeeded": items}
        started = time.perf_counter()
        await journal.write_manifest(run_id)
        return time.perf_counter() - started

    return asyncio.run(go())


def measure_cost(
    items: int, repeats: int, moto: MotoServer, root: Path
) -> dict[str, tuple[Measure, Measure]]:
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    import boto3

    boto3.client("s3", endpoint_url=moto.endpoint_url, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    variants: dict[str, Callable[[], float]] = {
        "no journal": lambda: run_plain(items),
        "FileJournal": lambda: run_journaled(lambda: FileJournal(root / "cost"), items),
        "S3Journal on moto": lambda: run_journaled(
            lambda: S3Journal(bucket, endpoint_url=moto.endpoint_url), items
        ),
    }
    runs: dict[str, list[float]] = {name: [] for name in variants}
    manifests: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):  # interleaved, so a slow moment of the machine hits all alike
        for name, variant in variants.items():
            started = time.perf_counter()
            manifest_seconds = variant()
            runs[name].append((time.perf_counter() - started - manifest_seconds) / items)
            manifests[name].append(manifest_seconds / items)
    return {name: (Measure(name, runs[name]), Measure(name, manifests[name])) for name in variants}


def build_journal(directory: Path, items: int) -> str:
    """A finished journaled run of ``items`` items in ``directory``; its run id."""

    async def go() -> str:
        run_id = f"run-{items}"
        journal = FileJournal(directory)
        result = await dispatch_many(
            value_job, range(items), concurrency=CAP, journal=journal, run_id=run_id
        )
        assert result.ok
        return run_id

    return asyncio.run(go())


def child(mode: str, directory: str, run_id: str) -> None:
    """In a fresh process: rebuild the manifest, stream the results, or nothing (``import``);
    then print the peak RSS.
    """

    async def go() -> None:
        journal = FileJournal(directory)
        if mode == "manifest":
            manifest = await journal.write_manifest(run_id)
            assert manifest["items"] > 0
        elif mode == "results":
            seen = 0
            async for outcome in journal.results(run_id):
                seen += outcome.value["n"] >= 0
            assert seen > 0

    asyncio.run(go())
    print(f"{own_peak_rss_mb():.1f}")


def peak_rss(mode: str, directory: Path, run_id: str) -> float:
    argv = [sys.executable, __file__, "--child", mode, str(directory), run_id]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def measure_memory(root: Path, repeats: int) -> list[tuple[int, Measure, Measure]]:
    rows = []
    for size in SIZES:
        directory = root / f"memory-{size}"
        run_id = build_journal(directory, size)
        manifest = Measure(
            "manifest", [peak_rss("manifest", directory, run_id) for _ in range(repeats)]
        )
        results = Measure(
            "results", [peak_rss("results", directory, run_id) for _ in range(repeats)]
        )
        rows.append((size, manifest, results))
    return rows


def report(
    items: int,
    cost: dict[str, tuple[Measure, Measure]],
    memory: list[tuple[int, Measure, Measure]],
    baseline: Measure,
    repeats: int,
) -> str:
    base = cost["no journal"][0].median
    cost_rows = [
        [
            name,
            run.cell(1e6),
            f"{run.median / base:.2f}x",
            f"{(run.median - base) * 1e6:.2f}",
            manifest.cell(1e6) if manifest.median else "",
        ]
        for name, (run, manifest) in cost.items()
    ]
    memory_rows = [
        [f"{size:,}", manifest.cell(fmt="{:.1f}"), results.cell(fmt="{:.1f}")]
        for size, manifest, results in memory
    ]
    small, large = memory[0], memory[-1]
    growth_manifest = large[1].median - small[1].median
    growth_results = large[2].median - small[2].median
    bars = [
        [
            f"manifest at 1M within +{MEMORY_BAR_MIB:.0f} MiB of 10k",
            f"{growth_manifest:+.1f} MiB",
            str(growth_manifest <= MEMORY_BAR_MIB),
        ],
        [
            f"streaming results at 1M within +{MEMORY_BAR_MIB:.0f} MiB of 10k",
            f"{growth_results:+.1f} MiB",
            str(growth_results <= MEMORY_BAR_MIB),
        ],
    ]
    return "\n\n".join(
        [
            f"{items:,} jobs that `await asyncio.sleep(0)`, cap {CAP}, {repeats} repeats, "
            f"{machine()}. A journaled run includes writing its manifest at its end; the last "
            "column is a rebuild of that manifest timed alone.",
            table(
                [
                    "variant",
                    "us/item, median (min-max)",
                    "vs no journal",
                    "us/item added",
                    "of which the manifest, us/item",
                ],
                cost_rows,
            ),
            f"Peak RSS in MiB of a fresh process, median of {repeats} (min-max); a process that "
            f"only imports aiofanout: {baseline.cell(fmt='{:.1f}')}.",
            table(["items journaled", "write_manifest", "stream results()"], memory_rows),
            table(["bar", "measured", "met"], bars),
        ]
    )


def main() -> None:
    args = arguments(__doc__, items=100_000)
    os.environ.update(FAKE_CREDENTIALS)
    with tempfile.TemporaryDirectory() as tmp, MotoServer() as moto:
        cost = measure_cost(args.items, args.repeats, moto, Path(tmp))
        memory = measure_memory(Path(tmp), min(args.repeats, 3))
        baseline = Measure("import", [peak_rss("import", Path(tmp), "") for _ in range(3)])
    body = report(args.items, cost, memory, baseline, args.repeats)
    publish("journal", body, args.write)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:5])
    else:
        main()
