"""The deployed worker: an aiofanout App (handler ``worker.lambda_handler``).

One function answers every way the orchestrator reaches it: a direct invoke
(``RequestResponse``), an ``Event`` invoke whose reply goes to a reply queue, and SQS batches
from the ``work`` queue (``batchItemFailures`` for what failed). The stack file hands it the
claim-check bucket and the idempotency table through its environment.
"""

from __future__ import annotations

import hashlib
import os

from aiofanout import ClaimCheck
from aiofanout.worker import App, DynamoDBStore

app = App(
    "example-worker",
    secret=os.environ.get("FANOUT_SECRET") or None,  # set the same secret on both sides
    claim_check=ClaimCheck(bucket=os.environ["CLAIM_BUCKET"]),
    idempotency=DynamoDBStore(table=os.environ["IDEMPOTENCY_TABLE"], create_table=False),
)


@app.task(timeout=25)
async def thumbnail(key: str, width: int = 128) -> dict[str, object]:
    """Pretend to make a thumbnail: a digest of the key and the width."""
    digest = hashlib.sha256(f"{key}:{width}".encode()).hexdigest()[:16]
    return {"key": key, "width": width, "digest": digest}


@app.task(idempotent=True, key=lambda order: order["id"])
async def charge(order: dict[str, object]) -> str:
    """Runs once per order id, however often the order is delivered."""
    return f"charged {order['id']}"


lambda_handler = app.lambda_handler
