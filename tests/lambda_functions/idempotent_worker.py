"""A worker with idempotent tasks that leaves a ledger of what reached it and what ran.

The ledger (``$LEDGER_FILE``) gets one line per event, ``<what> <key> <epoch ms>``, written by
one ``O_APPEND`` write, so a line is whole and stays whole when the process is killed:

- ``delivery``: the handler got an envelope for ``key`` (an SQS record or an ``Event``);
- ``start`` and ``finish``: a task body began and ended its work for ``key``;
- ``answer ... done`` or ``answer ... retry``: what the handler told Lambda about ``key``
  (``retry``: the record is reported in ``batchItemFailures``, or the invoke failed).

The store is a :class:`DynamoDBStore` whose table (``$IDEMPOTENCY_TABLE``) and endpoint
(``$IDEMPOTENCY_ENDPOINT``, the moto server) come from the function's environment. With
``$FAIL_FIRST_RECEIVE`` set, every SQS record received for the first time is reported failed
after it ran, so the queue delivers each message at least twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from aiofanout.worker import App, DynamoDBStore

#: ``fragile``'s timeout: the in-progress record of a run expires this long after its claim.
FRAGILE_TIMEOUT = 4.0

app = App(
    "idempotent-worker",
    idempotency=DynamoDBStore(
        table=os.environ["IDEMPOTENCY_TABLE"], endpoint_url=os.environ["IDEMPOTENCY_ENDPOINT"]
    ),
)


def note(what: str, key: str, outcome: str = "") -> None:
    """Append one ledger line with one ``O_APPEND`` write: lines never interleave or tear."""
    line = f"{what} {key} {time.time_ns() // 1_000_000} {outcome}".rstrip() + "\n"
    fd = os.open(os.environ["LEDGER_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def started_before(key: str) -> bool:
    """Whether a body already started for ``key`` (in any process)."""
    ledger = Path(os.environ["LEDGER_FILE"])
    return any(line.split()[:2] == ["start", key] for line in ledger.read_text().splitlines())


@app.task(idempotent=True, key=lambda key: key)
async def work(key: str) -> dict[str, str]:
    note("start", key)
    note("finish", key)
    return {"key": key, "shout": key.upper()}


@app.task(idempotent=True, key=lambda key: key, timeout=FRAGILE_TIMEOUT)
async def fragile(key: str) -> dict[str, str]:
    """Its first run dies mid-way, after the key was claimed; the runs after it finish."""
    first = not started_before(key)
    note("start", key)
    if first:
        os._exit(3)  # the environment dies: nothing releases the key, it expires
    note("finish", key)
    return {"key": key, "shout": key.upper()}


@app.task(idempotent=True, key=lambda key: key)
async def endless(key: str) -> None:
    """Never ends by itself (no timeout): only its invocation's deadline stops it."""
    note("start", key)
    await asyncio.Event().wait()


def _key_of(envelope: Any) -> str:
    try:
        data = json.loads(envelope) if isinstance(envelope, str | bytes) else envelope
        return str(data["args"][0])
    except (ValueError, KeyError, IndexError, TypeError):
        return "?"


def lambda_handler(event: Any, context: Any) -> Any:
    """The app's handler, with the ledger's ``delivery`` and ``answer`` lines around it."""
    records = event.get("Records") if isinstance(event, dict) else None
    if records is None:
        return _direct(event, context)
    for record in records:
        note("delivery", _key_of(record.get("body")))
    answer = app.lambda_handler(event, context)
    failed = {failure["itemIdentifier"] for failure in answer["batchItemFailures"]}
    if os.environ.get("FAIL_FIRST_RECEIVE"):
        failed |= {r["messageId"] for r in records if _received_once(r)}
        answer = {"batchItemFailures": [{"itemIdentifier": i} for i in sorted(failed)]}
    for record in records:
        note(
            "answer",
            _key_of(record.get("body")),
            "retry" if record["messageId"] in failed else "done",
        )
    return answer


def _received_once(record: dict[str, Any]) -> bool:
    return bool(record.get("attributes", {}).get("ApproximateReceiveCount") == "1")


def _direct(event: Any, context: Any) -> Any:
    key = _key_of(event)
    note("delivery", key)
    try:
        answer = app.lambda_handler(event, context)
    except Exception:
        note("answer", key, "retry")
        raise
    note("answer", key, "done")
    return answer
