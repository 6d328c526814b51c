"""A handler that leaves a mark when it starts and one when it finishes (for fault tests)."""

from __future__ import annotations

import os
import time
from typing import Any


def work(event: Any, context: Any) -> Any:
    """Append ``start <id>``, sleep ``seconds``, append ``finish <id>`` to ``$MARKS_FILE``."""
    mark("start", event["id"])
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
