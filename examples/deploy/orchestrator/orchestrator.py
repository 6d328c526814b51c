"""The deployed orchestrator (handler ``orchestrator.handler``): fans out, beyond one invocation.

Started by its schedule (``{"mode": "nightly", "items": 1000}``) or by hand, it fans the items
out to the worker with ``orchestrate``: it stops taking items before its own timeout, writes its
cursor to the journal and invokes itself to go on (the stack gives it ``RecursiveLoop: Allow``
and the permission to invoke itself). ``{"mode": "queue"}`` sends the items through the work
queue with replies instead, and ``{"mode": "events"}`` invokes the worker with ``Event`` and
gathers the replies from the shared reply queue.
"""

from __future__ import annotations

import os
from typing import Any

from aiofanout import LambdaTarget, S3Journal, SqsTarget, dispatch_many
from aiofanout.durable import orchestrate
from aiofanout.worker import lambda_entrypoint

WORKER = os.environ["WORKER_FUNCTION"]
journal = S3Journal(os.environ["JOURNAL_BUCKET"], os.environ.get("JOURNAL_PREFIX", ""))


@lambda_entrypoint
async def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Fan ``items`` keys out to the worker's ``thumbnail`` task; return a summary."""
    keys = [f"photos/{i:05d}.jpg" for i in range(int(event.get("items", 100)))]
    mode = event.get("mode", "nightly")
    if mode == "queue":
        target: Any = SqsTarget(os.environ["WORK_QUEUE"], task="thumbnail", replies=True)
    elif mode == "events":
        target = LambdaTarget(
            WORKER, task="thumbnail", invocation_type="Event", replies=os.environ["EVENT_REPLIES"]
        )
    else:  # the same keys on every invocation: continuations take up where the last stopped
        target = LambdaTarget(WORKER, task="thumbnail", chunk_size=10)
        return await orchestrate(
            target,
            keys,
            event=event,
            context=context,
            journal=journal,
            concurrency=20,
            timeout=30,
        )
    result = await dispatch_many(target, keys, concurrency=20, timeout=60)
    return {"counts": {s.value: n for s, n in result.counts.items() if n}}
