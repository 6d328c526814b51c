"""A worker whose environments export their spans to files, for the trace tests (test-only).

With ``TRACES_DIR`` set, each environment installs an OpenTelemetry SDK tracer provider that
writes every finished span as one JSON line to ``<TRACES_DIR>/<pid>.jsonl``, as it ends.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from aiofanout.worker import App


def _one_line(span: ReadableSpan) -> str:
    return str(span.to_json(indent=None)) + "\n"


if directory := os.environ.get("TRACES_DIR"):
    out = Path(directory, f"{os.getpid()}.jsonl").open("a", encoding="utf-8")  # noqa: SIM115
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(ConsoleSpanExporter(out=out, formatter=_one_line))
    )
    trace.set_tracer_provider(provider)

app = App("traced-worker", secret=os.environ.get("FANOUT_SECRET"))


@app.task
async def work(n: int) -> int:
    if n < 0:
        raise ValueError("negative")
    return n * n


def lambda_handler(event: Any, context: Any) -> Any:
    return app.lambda_handler(event, context)
