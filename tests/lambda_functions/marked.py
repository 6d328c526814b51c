"""A handler that leaves a mark when it starts and one when it finishes (for fault tests)."""

from __future__ import annotations

import os
import time
from typing import Any


def work(event: Any, context: Any) -> Any:
    """Append ``start <id>``, sleep, append ``finish <id>`` to ``$MARKS_FILE``.

    It sleeps ``seconds``, or, given ``leave``, until that many seconds of its timeout are left
    (the deadline counts from the delivery, so its own start-up time does not shift the end).
    """
    mark("start", event["id"])
    if "leave" in event:
        time.sleep(max(0.0, context.get_remaining_time_in_millis() / 1000 - event["leave"]))
    time.sleep(float(event.get("seconds", 0)))
    mark("finish", event["id"])
    return event["id"]


def mark(what: str, item: Any) -> None:
    # One O_APPEND write per line: concurrent environments never interleave within a line.
    fd = os.open(os.environ["MARKS_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{what} {item}\n".encode())
    finally:
        os.close(fd)
