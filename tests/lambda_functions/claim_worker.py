"""A worker for the claim check tests: large arguments and large replies through S3."""

from __future__ import annotations

import hashlib
import os

from aiofanout import ClaimCheck
from aiofanout.worker import App

# The local runtime points S3 at the moto server (AWS_ENDPOINT_URL_S3).
app = App(
    "claim-worker",
    secret=os.environ["FANOUT_SECRET"],
    claim_check=ClaimCheck(bucket=os.environ["CLAIM_BUCKET"]),
)


@app.task
async def digest(blob: str, reply_size: int = 0) -> dict[str, object]:
    """What arrived (its size and digest) and, on request, a reply of ``reply_size`` bytes."""
    sha = hashlib.sha256(blob.encode()).hexdigest()
    return {"size": len(blob), "sha256": sha, "padding": "r" * reply_size}


lambda_handler = app.lambda_handler
