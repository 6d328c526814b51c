"""An orchestrator function and its worker, for the continuation tests (test_continuation.py).

The worker's task appends the item to ``EXECUTIONS_FILE`` with one ``O_APPEND`` write before it
returns: the side channel that counts executions, which survives any process's death.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from aiofanout import LambdaTarget, Retry, S3Journal
from aiofanout.durable import orchestrate
from aiofanout.worker import App, DynamoDBStore, lambda_entrypoint

app = App("orchestration-worker")


async def execute(n: int) -> int:
    """The work of ``count``: wait ``ITEM_SECONDS``, log ``n`` to the side channel, double it."""
    await asyncio.sleep(float(os.environ.get("ITEM_SECONDS", "0")))
    fd = os.open(os.environ["EXECUTIONS_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{n}\n".encode())
    finally:
        os.close(fd)
    return n * 2


count = app.task(name="count")(execute)
worker_handler = app.lambda_handler


# The same ``count``, idempotent: once per key, in a DynamoDB table on the moto server. It has no
# ``key`` function, so its key is the one the orchestrator sends: ``"<run id>:<index>"``.
idempotent_app = App(
    "orchestration-idempotent-worker",
    idempotency=DynamoDBStore(
        table=os.environ.get("IDEMPOTENCY_TABLE", "unused"),  # the orchestrator has none
        endpoint_url=os.environ.get("IDEMPOTENCY_ENDPOINT"),
    ),
)
idempotent_app.task(name="count", idempotent=True)(execute)
idempotent_worker_handler = idempotent_app.lambda_handler


async def main(event: Any, context: Any) -> dict[str, Any]:
    """Fan ``ITEMS`` numbers out to the worker function, a chunk per invoke."""
    journal = S3Journal(os.environ["RUNS_BUCKET"], prefix="runs/")
    # Re-sending to an idempotent worker is safe: a chunk that timed out (a loaded machine) or
    # met an item still in progress from before a crash is sent again, and runs nothing twice.
    resend = os.environ.get("WORKER_IS_IDEMPOTENT") == "1"
    target = LambdaTarget(
        os.environ["WORKER"], task="count", chunk_size=50, retry_ambiguous=resend or None
    )
    items: range | list[int] = range(int(os.environ["ITEMS"]))
    if "DISTINCT" in os.environ:  # each value DISTINCT items apart: equal arguments, other items
        items = [n % int(os.environ["DISTINCT"]) for n in items]
    return await orchestrate(
        target,
        items,
        event=event,
        context=context,
        journal=journal,
        concurrency=int(os.environ.get("CONCURRENCY", "4")),
        timeout=float(os.environ.get("ATTEMPT_TIMEOUT", "3")),
        run_id=event.get("run_id"),
        # An item in progress elsewhere (in a chunk the crashed invocation sent) is retried
        # until that run ends: backoff ceilings 0.5 s doubling to 10 s.
        retry=Retry(attempts=8, base=0.5) if resend else None,
        destination=os.environ.get("SUMMARY_QUEUE") or None,
    )


orchestrator_handler = lambda_entrypoint(main)
