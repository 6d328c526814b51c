"""A worker for the fan-in tests: about 3% task errors, naps, and some records delivered twice."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from aiofanout.worker import App

app = App("fanin-worker")


def refused(n: int) -> bool:
    """The items ``work`` fails: about 3% of them."""
    return n % 33 == 32


def delivered_twice(n: int) -> bool:
    """The items whose SQS record this worker runs twice (SQS delivers at least once)."""
    return n % 10 == 5


@app.task
async def work(n: int) -> dict[str, int]:
    if refused(n):
        raise ValueError(f"{n} is refused")
    return {"n": n, "square": n * n}


def crashes(n: int) -> bool:
    """The items ``fragile`` kills its own process for, before any reply is sent."""
    return n % 10 == 7


@app.task
async def fragile(n: int) -> dict[str, int]:
    if crashes(n):
        os._exit(3)
    return await work(n)


@app.task
async def nap(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


def _item(record: Any) -> Any:
    try:
        args = json.loads(record["body"]).get("args") or [None]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return args[0]


def lambda_handler(event: Any, context: Any) -> Any:
    """The app's handler; records of ``delivered_twice`` items then run a second time."""
    answer = app.lambda_handler(event, context)
    records = event.get("Records", []) if isinstance(event, dict) else []
    again = [r for r in records if isinstance(_item(r), int) and delivered_twice(_item(r))]
    if again:
        app.lambda_handler({"Records": again}, context)
    return answer
