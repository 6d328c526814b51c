"""The handler of benchmarks/adaptive.py: a task of 50 ms (or ``event["seconds"]``)."""

import time
from typing import Any


def handler(event: Any, context: Any) -> Any:
    seconds = event.get("seconds", 0.05) if isinstance(event, dict) else 0.05
    time.sleep(seconds)
    return event
