"""The example worker: an aiofanout App run by Lambda (handler ``worker.lambda_handler``).

Register it with the local runtime (``code_paths=["examples"]``) or deploy this file with
``aiofanout`` to AWS Lambda and set the handler to ``worker.lambda_handler``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random

from aiofanout.worker import App

app = App("example-worker", secret=os.environ.get("FANOUT_SECRET"))


@app.task
async def thumbnail(key: str, width: int = 128) -> dict[str, object]:
    """Pretend to make a thumbnail: some I/O-like waiting, and a digest to return."""
    await asyncio.sleep(random.uniform(0.002, 0.02))
    digest = hashlib.sha256(f"{key}:{width}".encode()).hexdigest()[:16]
    return {"key": key, "width": width, "digest": digest}


@app.task
def checksum(text: str) -> str:
    """A sync task (runs in a worker thread)."""
    return hashlib.md5(text.encode()).hexdigest()


@app.task
async def flaky(n: int) -> int:
    """Fails for multiples of 7: shows per-item failures end to end."""
    if n % 7 == 0:
        raise ValueError(f"{n} is a multiple of 7")
    return n * n


lambda_handler = app.lambda_handler
