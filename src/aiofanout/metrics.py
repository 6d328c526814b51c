"""Metrics of a fan-out: its summary as CloudWatch Embedded Metric Format, or OpenTelemetry.

Opt in per fan-out with ``metrics=``; the summary (items by status, retries, throttles, the
adaptive limit, p50/p99 latency, dimensioned by the target's name) is recorded once, when the
fan-out ends.

Example::

    import aiofanout.metrics

    result = await aiofanout.dispatch_many(
        target, keys, concurrency=100,
        metrics=aiofanout.metrics.EmbeddedMetrics(namespace="Thumbnails"),
    )
"""

from __future__ import annotations

from ._metrics import EmbeddedMetrics, FanoutSummary, MetricsRecorder, OpenTelemetryMetrics
from ._public import show_public_path

__all__ = ["EmbeddedMetrics", "FanoutSummary", "MetricsRecorder", "OpenTelemetryMetrics"]

show_public_path(__name__, __all__, globals())
