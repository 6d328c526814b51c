"""The worker the serve --template tests deploy from a SAM template: squares, and its settings."""

from __future__ import annotations

import os

from aiofanout.worker import App

app = App("template-worker")


@app.task
async def square(n: int) -> int:
    if n < 0:
        raise ValueError(f"{n} is negative")
    return n * n


@app.task
async def setting(name: str) -> str | None:
    """An environment variable the template set (``Environment.Variables``, ``Globals``)."""
    return os.environ.get(name)


@app.task
async def limits(_: int) -> dict[str, str | None]:
    """What the runtime gave the environment from the template: memory, function name."""
    return {
        "memory": os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
        "name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
    }


lambda_handler = app.lambda_handler
