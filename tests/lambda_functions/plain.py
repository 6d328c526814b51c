"""Plain Lambda handlers (no aiofanout) used by the local runtime tests."""

from __future__ import annotations

import os
import time
from typing import Any


def echo(event: Any, context: Any) -> Any:
    return event


def context_info(event: Any, context: Any) -> dict[str, Any]:
    return {
        "remaining_ms": context.get_remaining_time_in_millis(),
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "request_id": context.aws_request_id,
        "name": context.function_name,
        "custom": os.environ.get("CUSTOM_SETTING"),
        "max_concurrency": os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY"),
    }


def sleep(event: Any, context: Any) -> str:
    time.sleep(float(event["seconds"]))
    return "awake"


def crash(event: Any, context: Any) -> None:
    os._exit(3)


def fail(event: Any, context: Any) -> None:
    raise KeyError("missing-key")


def environ(event: Any, context: Any) -> dict[str, str | None]:
    """The named variables of the function's environment (what a leak test looks for)."""
    return {name: os.environ.get(name) for name in event["names"]}


def sized(event: Any, context: Any) -> str:
    """A response of about ``event["bytes"]`` bytes (a JSON string)."""
    return "x" * int(event["bytes"])
