"""An orchestrator Lambda: fans a batch out to the worker function and returns a summary.

Handler ``orchestrator.handler``. The deadline comes from the Lambda context, less a margin to
reply, so a large batch stops cleanly instead of being killed mid-way. On AWS leave
``AWS_ENDPOINT_URL_LAMBDA`` unset; locally the runtime's endpoint goes there (botocore reads it).

Event: ``{"keys": ["a.jpg", ...], "concurrency": 20}``.
"""

from __future__ import annotations

import os
from typing import Any

from aiofanout import Deadline, LambdaTarget, Retry, dispatch_many
from aiofanout.worker import lambda_entrypoint

WORKER = os.environ.get("WORKER_FUNCTION", "worker")


@lambda_entrypoint
async def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Fan ``event["keys"]`` out to the worker's ``thumbnail`` task; summarise."""
    target = LambdaTarget(WORKER, task="thumbnail")
    result = await dispatch_many(
        target,
        event["keys"],
        concurrency=int(event.get("concurrency", 20)),
        timeout=30,
        deadline=Deadline.from_lambda_context(context, margin=2.0),
        retry=Retry(attempts=5, base=0.1),
    )
    return {
        "counts": {status.value: n for status, n in result.counts.items() if n},
        "failed": [{"index": o.index, "error": str(o.error)} for o in result.failures()],
        "retries": result.retries,
        "p99_ms": round(result.latency.p99 * 1000, 1),
        "stopped": result.stopped,
    }
