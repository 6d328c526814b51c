"""The trivial handler of benchmarks/local.py: returns its event."""

from typing import Any


def handler(event: Any, context: Any) -> Any:
    return event
