"""An aiofanout App run by the local runtime in the end-to-end tests."""

from __future__ import annotations

import os
from pathlib import Path

from aiofanout.worker import App

app = App("e2e-worker")


def _note(line: str) -> None:
    path = os.environ.get("NOTES_FILE")
    if path:
        with Path(path).open("a") as notes:
            notes.write(line + "\n")


@app.task
async def square(n: int) -> int:
    _note(f"square {n}")
    return n * n


@app.task
async def always_fails(tag: str) -> None:
    _note(f"fail {tag}")
    raise RuntimeError(f"{tag} always fails")


@app.task
async def picky(n: int) -> int:
    _note(f"picky {n}")
    if n % 7 == 0:
        raise ValueError(f"{n} is a multiple of 7")
    return n


lambda_handler = app.lambda_handler
