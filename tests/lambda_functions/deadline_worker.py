"""A worker whose tasks leave marker files, to see what ran and what did not (deadline tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiofanout.worker import App

app = App("deadline-worker")


@app.task
async def slow_touch(folder: str, name: str, seconds: float) -> str:
    """Mark the start, work ``seconds``, then mark the end: the end is the side effect."""
    Path(folder, f"{name}.started").touch()  # noqa: ASYNC240 - a marker file, instant
    await asyncio.sleep(seconds)
    Path(folder, f"{name}.finished").touch()  # noqa: ASYNC240
    return name


lambda_handler = app.lambda_handler
