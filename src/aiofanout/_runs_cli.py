"""``python -m aiofanout runs``: the runs of a journal, one run's summary, failures and export.

``_cli.py`` adds the subcommand; the reading is ``_journal/_runs.py``'s. Every command streams
(a part of the journal at a time), so a run of millions of items reads in flat memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import sys
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any, TextIO

from ._errors import JournalError, NotFound, UsageError
from ._journal import FileJournal, Journal, JournalRecord, S3Journal
from ._journal._runs import EXPORT_COLUMNS, FinalPart, export_row, final_parts, run_ids, run_summary

__all__ = ["add_runs", "run_runs"]

RUNS_DESCRIPTION = """\
Read the runs of a journal (dispatch_many(..., journal=...), resume, orchestrate) without
writing to it: what runs there are, how one went, what failed and why, every final record.

The journal is a FileJournal directory or an S3Journal location, given by --journal (or the
AIOFANOUT_JOURNAL environment variable): a path, or s3://BUCKET/PREFIX (s3://BUCKET alone is
S3Journal(BUCKET), prefix aiofanout/runs/). S3 takes the usual AWS credentials, region and
AWS_ENDPOINT_URL* variables, or --endpoint-url and --region.

A run is complete once its manifest is written (the fan-out ended: every item it took
succeeded, failed, timed out or was cancelled). A run that is still going, or that died before
its end, is read from its journal's parts: counts and records are its items' final records so
far. Items are counted once, by their final record (a resumed success wins over the failure
before it). Records stream in the manifest's order (succeeded, then the rest, each in the order
they ended), not by index.

examples:
  python -m aiofanout runs list --journal runs/
  python -m aiofanout runs show nightly --journal s3://my-runs-bucket/fanouts/
  python -m aiofanout runs failures nightly --journal runs/ --json | jq .error_type
  python -m aiofanout runs export nightly --journal runs/ --format csv --output nightly.csv
"""

RUN_HELP = "the run's id, as `runs list` shows it"
PROGRESS_EVERY = 100_000  # records between progress lines of export, on a terminal


def add_runs(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``runs`` and its commands to the parser's subcommands."""
    runs = commands.add_parser(
        "runs",
        help="list a journal's runs, show one, its failures, export its records",
        description=RUNS_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = _common_options()
    actions = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    _add_list_and_show(actions, common)
    _add_failures_and_export(actions, common)


def _add_list_and_show(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    listing = actions.add_parser(
        "list",
        parents=[common],
        help="the runs: id, start, items, counts by status, complete or not",
        description="One line per run, oldest first (generated run ids start with their time).",
    )
    _add_json(listing, "a JSON object per line: run_id, started_at, complete, items, counts")
    show = actions.add_parser(
        "show",
        parents=[common],
        help="one run: its manifest, counts by status, its first failures",
        description="The run's start, state and counts, its manifest, and its first failures.",
    )
    show.add_argument("run_id", metavar="RUN", help=RUN_HELP)
    _add_json(show, "one JSON object: the summary, the manifest and first_failures")
    show.add_argument(
        "--failures", type=int, default=10, metavar="N", help="failures shown (default: 10)"
    )


def _add_failures_and_export(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    failures = actions.add_parser(
        "failures",
        parents=[common],
        help="every item of a run that did not succeed, with its error",
        description="Each failed, timed-out or cancelled item: index, status, attempts, error.",
    )
    failures.add_argument("run_id", metavar="RUN", help=RUN_HELP)
    _add_json(failures, "a JSON object per line: index, status, attempts, error_type, ...")
    export = actions.add_parser(
        "export",
        parents=[common],
        help="every final record of a run, as JSON lines or CSV",
        description=(
            "Every item's final record, streamed, with the columns "
            f"{', '.join(EXPORT_COLUMNS)} (in CSV, value is its JSON text)."
        ),
    )
    export.add_argument("run_id", metavar="RUN", help=RUN_HELP)
    export.add_argument(
        "--format",
        choices=["jsonl", "csv"],
        default="jsonl",
        help="JSON lines (default) or CSV with a header row",
    )
    export.add_argument("--output", metavar="FILE", help="write there (default: stdout)")


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--journal",
        metavar="PATH|s3://BUCKET/PREFIX",
        default=os.environ.get("AIOFANOUT_JOURNAL"),
        help="the journal: a directory, or an S3 location (default: $AIOFANOUT_JOURNAL)",
    )
    common.add_argument("--endpoint-url", metavar="URL", help="the S3 endpoint (a local stack)")
    common.add_argument("--region", metavar="REGION", help="the S3 region")
    return common


def _add_json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"for scripts: {what}")


def journal_of(location: str | None, *, endpoint_url: str | None, region: str | None) -> Journal:
    """The journal ``--journal`` names: a directory, or ``s3://bucket/prefix``."""
    if not location:
        raise UsageError(
            "runs needs --journal PATH or --journal s3://BUCKET/PREFIX (or AIOFANOUT_JOURNAL)"
        )
    if not location.startswith("s3://"):
        if not os.path.isdir(location):
            raise UsageError(f"--journal {location}: no such directory")
        return FileJournal(location)
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    options: dict[str, Any] = {"endpoint_url": endpoint_url, "region_name": region}
    return S3Journal(bucket, prefix, **options) if prefix else S3Journal(bucket, **options)


def run_runs(args: argparse.Namespace) -> int:
    """Run ``runs ACTION``; the exit status (1 for a run or journal that cannot be read)."""
    journal = journal_of(args.journal, endpoint_url=args.endpoint_url, region=args.region)
    action: Callable[[Journal, argparse.Namespace, TextIO], Any] = ACTIONS[args.runs_command]
    try:
        if getattr(args, "output", None):
            with open(args.output, "w", newline="", encoding="utf-8") as out:
                asyncio.run(action(journal, args, out))
        else:
            asyncio.run(action(journal, args, sys.stdout))
    except (NotFound, JournalError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `| head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


async def _list(journal: Journal, args: argparse.Namespace, out: TextIO) -> None:
    async with journal:
        ids = await run_ids(journal)
        if not args.json:
            print(f"{'RUN':36} {'STARTED (UTC)':20} {'STATE':8} {'ITEMS':>9}  COUNTS", file=out)
        for run_id in ids:
            try:
                summary = await run_summary(journal, run_id)
            except NotFound:  # a folder that is not a run (no run.json, no manifest)
                continue
            if args.json:
                row = summary.as_json()
                row.pop("manifest")
                print(json.dumps(row), file=out)
                continue
            state = "complete" if summary.complete else "open"
            counts = _counts_text(summary.counts)
            started = _when(summary.started_at)
            print(f"{run_id:36} {started:20} {state:8} {summary.items:>9}  {counts}", file=out)
        if not ids and not args.json:
            print(f"(no runs in {journal.location})", file=out)


async def _show(journal: Journal, args: argparse.Namespace, out: TextIO) -> None:
    async with journal:
        summary = await run_summary(journal, args.run_id)
        failed = final_parts(journal, args.run_id, failures_only=True)
        async with contextlib.aclosing(failed) as records:
            first = await _first(records, args.failures)
    failures = [_failure_row(export_row(record)) for record in first]
    if args.json:
        print(json.dumps({**summary.as_json(), "first_failures": failures}, indent=2), file=out)
        return
    print(f"run:      {summary.run_id}  ({journal.location})", file=out)
    print(f"started:  {_when(summary.started_at)}", file=out)
    state = "complete (manifest written)" if summary.complete else "open: no manifest yet"
    print(f"state:    {state}", file=out)
    print(f"items:    {summary.items}  ({_counts_text(summary.counts)})", file=out)
    if summary.manifest is not None:
        print("manifest:", file=out)
        for line in json.dumps(summary.manifest, indent=2).splitlines():
            print(f"  {line}", file=out)
    if failures:
        print(f"first {len(failures)} failures:", file=out)
        for row in failures:
            print(f"  {_failure_text(row)}", file=out)


async def _failures(journal: Journal, args: argparse.Namespace, out: TextIO) -> None:
    async for part in final_parts(journal, args.run_id, failures_only=True):
        rows = [_failure_row(export_row(record)) for record in part.records()]
        out.writelines(f"{json.dumps(r) if args.json else _failure_text(r)}\n" for r in rows)


async def _export(journal: Journal, args: argparse.Namespace, out: TextIO) -> None:
    write = _csv_writer(out) if args.format == "csv" else _jsonl_writer(out)
    progress = sys.stderr.isatty() and out is not sys.stderr
    count = shown = 0
    async for part in final_parts(journal, args.run_id):
        count += write(part)
        if progress and count - shown >= PROGRESS_EVERY:
            print(f"\r{count:,} records", end="", file=sys.stderr, flush=True)
            shown = count
    if progress:
        print(f"\r{count:,} records exported", file=sys.stderr)


def _jsonl_writer(out: TextIO) -> Callable[[FinalPart], int]:
    def write(part: FinalPart) -> int:
        lines = part.jsonl()
        out.write(lines)
        return lines.count("\n")

    return write


def _csv_writer(out: TextIO) -> Callable[[FinalPart], int]:
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)

    def write(part: FinalPart) -> int:
        rows = part.csv_rows()
        writer.writerows(rows)
        return len(rows)

    return write


async def _first(parts: AsyncGenerator[FinalPart, None], n: int) -> list[JournalRecord]:
    """The first ``n`` records of ``parts`` (the parts after them are not read)."""
    first: list[JournalRecord] = []
    if n > 0:
        async for part in parts:
            first.extend(part.records()[: n - len(first)])
            if len(first) >= n:
                break
    return first


def _failure_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("index", "status", "attempts", "error_type", "error_message")}


def _failure_text(row: dict[str, Any]) -> str:
    error = f"{row['error_type']}: {row['error_message']}" if row["error_type"] else "-"
    n = row["attempts"]
    return f"item {row['index']}: {row['status']} after {n} attempt{'s' if n != 1 else ''}: {error}"


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{status} {n}" for status, n in counts.items() if n) or "-"


def _when(started_at: float | None) -> str:
    if started_at is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started_at))


ACTIONS: dict[str, Callable[[Journal, argparse.Namespace, TextIO], Any]] = {
    "list": _list,
    "show": _show,
    "failures": _failures,
    "export": _export,
}
