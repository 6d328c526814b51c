"""A worker for the SNS, init hook and task record tests: counts its inits, fails one when asked.

The local runtime points DynamoDB and S3 at the moto server (``AWS_ENDPOINT_URL_*``).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from aiofanout import ClaimCheck
from aiofanout.testing import eventually
from aiofanout.worker import App, TaskRecords

table, bucket = os.environ.get("RECORDS_TABLE"), os.environ.get("CLAIM_BUCKET")
app = App(
    "peers-worker",
    records=TaskRecords(table) if table else None,
    claim_check=ClaimCheck(bucket=bucket) if bucket else None,
)

INITS: list[str] = []  # the hooks that ran in this environment, in order
LOOPS: list[int] = []  # the loop the async hook ran on


@app.on_init
def count_inits() -> None:  # a sync hook
    INITS.append("count_inits")


@app.on_init
async def open_pool() -> None:  # an async hook, on the environment's loop
    LOOPS.append(id(asyncio.get_running_loop()))
    _fail_once()
    INITS.append("open_pool")


def _fail_once() -> None:
    marker = os.environ.get("FAIL_INIT_ONCE")  # a file: its first environment's init fails
    if marker and Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))  # which environment failed
        Path(marker).rename(f"{marker}.failed")
        raise ConnectionError("the model server did not answer")


@app.task
async def whoami(hold: float = 0.0) -> dict[str, object]:
    await asyncio.sleep(hold)  # held: a concurrent invoke needs a second environment
    return {
        "pid": os.getpid(),
        "inits": list(INITS),
        "same_loop": [id(asyncio.get_running_loop())] == LOOPS,
    }


@app.task
async def gated(gate: str) -> str:
    """Runs until the test opens its gate (makes the file): meanwhile its record is running."""
    await eventually(Path(gate).exists, timeout=20, interval=0.01)
    return "through"


@app.task
async def square(n: int) -> int:
    if n < 0:
        raise ValueError("negative numbers have no place here")
    return n * n


@app.task
async def big(size: int) -> str:
    return "x" * size


@app.task
async def length(text: str) -> int:
    return len(text)


lambda_handler = app.lambda_handler
