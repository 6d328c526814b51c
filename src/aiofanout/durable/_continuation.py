"""Fan-outs longer than one Lambda invocation: stop in time, write a cursor, invoke yourself.

Each invocation of an orchestrator function runs one *segment* of the run:

1. it finds where to start: the cursor the invocation before it wrote (``<run>/cursors/``), and
   claims its invocation number (``<run>/claims/``) with its request id, so a duplicate chain
   (Lambda may deliver an ``Event`` twice) stops at once while Lambda's own retry of this very
   invocation (same request id) goes on;
2. it reads the source from there, skipping the items the journal already has, and stops taking
   items ``margin`` seconds before the invocation's end; items still running at the hard stop
   (``RESERVE`` seconds before the end) are not journaled and start the next segment;
3. it flushes the journal, writes its cursor, and either invokes itself (``Event``) for the next
   segment or, at the end of the input, writes the manifest and the summary.

An item ends in the journal at most once per segment that runs it; a crash of the orchestrator
mid-segment loses only its unwritten part, and the segment's retry (or :func:`resume_event`)
runs those items again: at least once, exactly once with an idempotent task.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Unpack

from .._aws import aws_session
from .._engine import FanoutOptions, checked_options
from .._errors import UsageError
from .._journal import Journal, RunWriter, check_run_id
from .._journaled import JournaledRun, replay_of
from .._log_fields import bound as log_fields
from .._log_fields import library_logger
from .._options import Deadline, Options, clock
from .._outcome import STATUSES, Attempt
from .._sinks import CountingSink
from ._sources import Position, SequenceSource, Source

__all__ = ["CONTINUE", "orchestrate", "resume_event"]

log = library_logger("aiofanout")
#: The key of a continuation's event.
CONTINUE = "aiofanout.continue"
#: Seconds kept at the end of an invocation to flush the journal, write the cursor and invoke.
RESERVE = 1.5


def resume_event(run_id: str) -> dict[str, Any]:
    """The event that makes an orchestrator go on with ``run_id`` from its last cursor.

    For a run whose chain broke (the orchestrator crashed and Lambda's retries ran out, or the
    budget of invocations was spent). Items that succeeded are not run again.

    Example::

        await lambda_client.invoke(
            FunctionName="orchestrator",
            InvocationType="Event",
            Payload=json.dumps(resume_event("nightly-2026-11-23")),
        )
    """
    return {CONTINUE: {"run_id": check_run_id(run_id), "resume": True}}


@dataclass(slots=True)
class _Plan:
    """Where a segment starts."""

    run_id: str
    invocation: int
    start: Position
    replay_from: int  # the oldest journal generation that may hold items past ``start``
    chain_start: int  # the invocation this chain of continuations started at (the budget's)


@dataclass(slots=True)
class _Segment:
    """One invocation's share of the run: what it took, what is left, where to go on."""

    plan: _Plan
    writer: RunWriter
    replayed: set[int]  # indexes past the start the journal already has
    stop_taking_at: float
    pending: dict[int, Position] = field(default_factory=dict)  # taken, not journaled yet
    next_position: Position | None = None  # None: the source is exhausted

    async def feed(self, source: Source) -> AsyncGenerator[Any, None]:
        """The source's items from the start until it is time to stop taking them.

        Each is compared with the item the run read at its index before (a source that changed
        between invocations is refused, naming the index: see ``aiofanout._journal._inputs``).
        """
        inputs = self.writer.inputs
        assert inputs is not None
        count = int(self.plan.start["index"])
        entries = source.read(self.plan.start)
        try:
            async for entry in entries:
                if clock() >= self.stop_taking_at:
                    self.next_position = entry.position
                    return
                await inputs.see(entry.index, entry.item)
                if entry.index not in self.replayed:
                    self.pending[entry.index] = entry.position
                count = entry.index + 1
                yield entry.item
            inputs.end(count)
        finally:
            await entries.aclose()

    def record(
        self, index: int, result: Attempt, attempts: int, elapsed: float, *, by_deadline: bool
    ) -> Attempt:
        """Journal an item's end, unless the invocation's end cut it: the next one goes on.

        The invocation's deadline is not the run's: an attempt it expired, or a retry it
        refused (one that would start past it), is the next invocation's to make.
        """
        if by_deadline:
            return result
        index += self.plan.start["index"]
        self.pending.pop(index, None)
        return self.writer.record(index, result, attempts, elapsed, by_deadline=False)

    async def wait_for_room(self) -> None:
        await self.writer.wait_for_room()

    def item_key(self, index: int) -> str:
        """The item's key in the whole run (this segment counts its items from its start)."""
        return self.writer.item_key(index + self.plan.start["index"])

    def cursor(self) -> tuple[Position | None, int]:
        """Where the next segment starts (``None``: nothing left), and its ``replay_from``."""
        if not self.pending:
            return self.next_position, self.plan.invocation
        first = min(self.pending)
        older = any(index > first for index in self.replayed)
        return self.pending[first], self.plan.replay_from if older else self.plan.invocation


async def orchestrate(
    target: object,
    source: Source | Sequence[Any],
    *,
    event: Mapping[str, Any],
    context: Any,
    margin: float | None = None,
    max_invocations: int = 100,
    destination: str | None = None,
    session: Any = None,
    **options: Unpack[FanoutOptions],
) -> dict[str, Any]:
    """Fan a source out from a Lambda function, over as many invocations as it takes.

    Call it from the orchestrator's handler with its ``event`` and ``context``. It takes items
    until ``margin`` seconds before the invocation's end, lets what is in flight finish, writes
    its cursor to the ``journal``, and invokes its own function (``Event``) to go on; the last
    invocation writes the run's manifest and returns (and, with ``destination``, sends to that
    SQS queue) the summary. Each invocation skips what the journal has, so a retried or
    duplicated invocation does not run a journaled item again.

    Args:
        target: as for :func:`~aiofanout.dispatch_many`.
        source: a :class:`Source` (:class:`S3Lines`), or a list or range the function builds
            the same way on every invocation.
        margin: seconds before the invocation's end when no new item starts (default: the
            attempt timeout plus 2 s); attempts still running 1.5 s before the end are cut and
            run again by the next invocation.
        max_invocations: the budget of invocations for the run, apart from the tasks' depth
            budget; past it the chain stops with ``state: "budget_exhausted"``, to be resumed
            with :func:`resume_event`.
        destination: an SQS queue URL that receives the summary of a finished run.
        session: an aioboto3 ``Session`` for the self-invoke and the destination.
        event: the handler's event: a start, or a continuation this function sent itself.
        context: the handler's Lambda context (its time left, its request id, its name).
        journal: where the run's items, cursors and manifest go (an :class:`S3Journal`).
        options: as for :func:`~aiofanout.dispatch_many`, but ``deadline`` is the
            invocation's own; ``run_id`` names the run (default: ``run-<request id>``).

    Returns:
        ``{"run_id", "invocation", "state", "counts"}``; ``state`` is ``"continued"``,
        ``"finished"`` (with ``"manifest"``), ``"budget_exhausted"`` or ``"duplicate"``.

    Example::

        journal = S3Journal("my-runs-bucket")
        target = LambdaTarget("worker", task="resize", chunk_size=50)

        async def main(event, context):
            return await orchestrate(
                target, S3Lines("inputs", "photos.jsonl"),
                event=event, context=context, journal=journal, concurrency=20, timeout=30,
            )

    """
    journal, checked = _checked(dict(options), context, max_invocations)
    src = source if isinstance(source, Source) else SequenceSource(source)
    taking = (checked.timeout or 0.0) + 2.0 if margin is None else margin
    async with journal:
        plan = await _plan(journal, event, context, options.get("run_id"), src)
        summary: dict[str, Any] = {"run_id": plan.run_id if plan else None}
        if plan is None:
            return summary | {"state": "duplicate"}
        summary["invocation"] = plan.invocation
        counts, position, replay_from = await _run_segment(
            target, src, plan, checked, journal, context, taking
        )
        summary["counts"] = counts
        await _write_cursor(journal, plan, position, replay_from, counts)
        if position is not None:
            if plan.invocation - plan.chain_start + 1 >= max_invocations:
                log.warning(
                    "run %s: %d invocations, its budget; stopped", plan.run_id, max_invocations
                )
                return summary | {"state": "budget_exhausted"}
            await _invoke_next(context, session, plan)
            return summary | {"state": "continued"}
        manifest = await journal.write_manifest(plan.run_id)
        summary |= {"state": "finished", "counts": manifest["counts"], "manifest": manifest}
    if destination is not None:
        await _send_summary(session, destination, summary)
    return summary


def _checked(
    options: dict[str, Any], context: Any, max_invocations: int
) -> tuple[Journal, Options]:
    journal = options.pop("journal", None)
    if not isinstance(journal, Journal):
        raise UsageError(
            f"orchestrate() needs journal=: an S3Journal (or FileJournal), got {journal!r}"
        )
    if options.get("deadline") is not None:
        raise UsageError("orchestrate() sets the deadline: the invocation's end, less a margin")
    if max_invocations < 1:
        raise UsageError(f"max_invocations must be >= 1, got {max_invocations}")
    options["deadline"] = Deadline.from_lambda_context(context, margin=RESERVE)
    return journal, checked_options("orchestrate", options)


# -- where a segment starts ----------------------------------------------------------------------


async def _plan(
    journal: Journal, event: Mapping[str, Any], context: Any, run_id: str | None, source: Source
) -> _Plan | None:
    """Where this invocation starts; ``None`` if another invocation holds its claim."""
    request = event.get(CONTINUE) if isinstance(event, Mapping) else None
    request_id = str(getattr(context, "aws_request_id", "") or "")
    if request is None:  # a start, or Lambda's retry of one (the same request id, the same run)
        run_id = check_run_id(run_id) if run_id is not None else f"run-{request_id}"
        await journal.ensure_run(run_id)
        invocation, forced = None, False
    else:
        run_id = check_run_id(request.get("run_id"))
        await journal.check_run(run_id)
        invocation, forced = request.get("invocation"), bool(request.get("resume"))
    last = await _latest_cursor(journal, run_id)
    if invocation is None:
        invocation = 1 if last is None else int(last["invocation"]) + 1
    if not await _claim(journal, run_id, int(invocation), request_id, force=forced):
        log.warning("run %s: invocation %s is another's; this one stops", run_id, invocation)
        return None
    start = source.start() if last is None else last["position"]
    if start is None:
        raise UsageError(f"run {run_id!r} has finished: its manifest is in {journal.location}")
    chain_start = invocation if request is None or forced else request.get("chain_start", 1)
    replay_from = 0 if last is None else int(last["replay_from"])
    return _Plan(run_id, int(invocation), start, replay_from, int(chain_start))


async def _latest_cursor(journal: Journal, run_id: str) -> dict[str, Any] | None:
    keys = await journal.storage.keys(f"{run_id}/cursors/")
    if not keys:
        return None
    data = await journal.storage.get(keys[-1])
    return None if data is None else dict(json.loads(data))


async def _claim(
    journal: Journal, run_id: str, invocation: int, request_id: str, *, force: bool
) -> bool:
    key = f"{run_id}/claims/{invocation:05d}.json"
    body = json.dumps({"request_id": request_id}).encode()
    if force:
        await journal.storage.put(key, body)
        return True
    if await journal.storage.put_new(key, body):
        return True
    held = await journal.storage.get(key)
    return held is not None and json.loads(held).get("request_id") == request_id


# -- one segment ---------------------------------------------------------------------------------


async def _run_segment(
    target: object,
    source: Source,
    plan: _Plan,
    options: Any,
    journal: Journal,
    context: Any,
    margin: float,
) -> tuple[dict[str, int], Position | None, int]:
    """Run the segment; its counts, where the next one starts, and that one's ``replay_from``."""
    remaining = context.get_remaining_time_in_millis() / 1000.0
    if margin + RESERVE >= remaining:
        raise UsageError(
            f"margin={margin:g}s (plus {RESERVE}s to hand over) leaves no time in an invocation "
            f"with {remaining:.1f}s left: give the function a longer timeout or a smaller margin"
        )
    base = int(plan.start["index"])
    done = await journal.final_records(plan.run_id, since_generation=plan.replay_from)
    replay = replay_of(done, first=base)
    writer = await journal.writer(plan.run_id, generation=plan.invocation)
    segment = _Segment(plan, writer, {i + base for i in replay}, clock() + remaining - margin)
    sink = CountingSink()
    feed = segment.feed(source)
    journaled = JournaledRun(
        target, feed, sink, options, writer, recorder=segment, replay=replay, reader=feed
    )
    with log_fields(run_id=plan.run_id):  # what the segment logs names its run
        await journaled.execute()
    counts = {s.value: n for s, n in zip(STATUSES, sink.counts, strict=True) if n}
    position, replay_from = segment.cursor()
    return counts, position, replay_from


async def _write_cursor(
    journal: Journal,
    plan: _Plan,
    position: Position | None,
    replay_from: int,
    counts: dict[str, int],
) -> None:
    cursor = {
        "run_id": plan.run_id,
        "invocation": plan.invocation,
        "position": position,
        "replay_from": replay_from,
        "counts": counts,
    }
    key = f"{plan.run_id}/cursors/{plan.invocation:05d}.json"
    await journal.storage.put(key, json.dumps(cursor).encode())


async def _invoke_next(context: Any, session: Any, plan: _Plan) -> None:
    """Invoke this very function (``Event``) with the next segment's event."""
    event = {
        CONTINUE: {
            "run_id": plan.run_id,
            "invocation": plan.invocation + 1,
            "chain_start": plan.chain_start,
        }
    }
    async with aws_session(session, "orchestrate() continuations").client("lambda") as client:
        await client.invoke(
            FunctionName=context.invoked_function_arn or context.function_name,
            InvocationType="Event",
            Payload=json.dumps(event).encode(),
        )


async def _send_summary(session: Any, queue_url: str, summary: dict[str, Any]) -> None:
    async with aws_session(session, "orchestrate() continuations").client("sqs") as client:
        await client.send_message(QueueUrl=queue_url, MessageBody=json.dumps(summary))
