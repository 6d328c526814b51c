"""A fan-out's summary as metrics: CloudWatch Embedded Metric Format, or OpenTelemetry.

Opt in with ``dispatch_many(..., metrics=...)``: at the end of the fan-out its summary (items by
status, retries, throttles, the adaptive limit, p50/p99 latency) is recorded once, dimensioned
by the target's name. Once per fan-out, never per item, so it costs nothing while work runs.

EMF is one JSON object on stdout, which Lambda (and the CloudWatch agent) turn into metrics with
no API call; the document follows the EMF specification (``_aws.Timestamp``,
``_aws.CloudWatchMetrics`` directives, a unit per metric, the values at the root).
OpenTelemetry goes through a meter provider (the global one by default); ``opentelemetry-api``
is imported only when an :class:`OpenTelemetryMetrics` records.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Protocol, final, runtime_checkable

from ._errors import UsageError
from ._outcome import Status
from ._result import FanoutResult

__all__ = ["EmbeddedMetrics", "FanoutSummary", "MetricsRecorder", "OpenTelemetryMetrics"]

#: EMF allows at most 30 dimensions in a dimension set; the target's name is one.
MAX_DIMENSIONS = 30


@final
@dataclass(frozen=True, slots=True)
class FanoutSummary:
    """What a fan-out's metrics say: counts, retries, throttles, the limit, latency.

    ``throttles``: the attempts the far end throttled (``result.throttles``). ``limit``: the
    adaptive limit at the end (``None`` without ``adaptive``). Latencies are in milliseconds,
    over the items that started.

    Example::

        summary = FanoutSummary.of(result, target="thumbnails")
        print(summary.counts[Status.FAILED], summary.p99_ms)
    """

    target: str
    items: int
    counts: Mapping[Status, int]
    retries: int
    throttles: int
    limit: int | None
    p50_ms: float
    p99_ms: float
    elapsed: float
    run_id: str | None = None

    @classmethod
    def of(cls, result: FanoutResult[Any], *, target: str) -> FanoutSummary:
        """The summary of ``result``, a fan-out through the target named ``target``."""
        limit = result.limit
        return cls(
            target=target,
            items=len(result),
            counts=result.counts,
            retries=result.retries,
            throttles=result.throttles,
            limit=None if limit is None else limit.final,
            p50_ms=result.latency.p50 * 1000,
            p99_ms=result.latency.p99 * 1000,
            elapsed=result.elapsed,
            run_id=result.run_id,
        )


@runtime_checkable
class MetricsRecorder(Protocol):
    """What ``metrics=`` takes: something that records a :class:`FanoutSummary`.

    Example::

        class Printed:
            def record(self, summary: FanoutSummary) -> None:
                print(summary.target, summary.counts)
    """

    def record(self, summary: FanoutSummary) -> None:
        """Record one fan-out's summary (called once, when the fan-out has ended)."""


_STATUS_METRICS = {
    Status.SUCCEEDED: "Succeeded",
    Status.FAILED: "Failed",
    Status.TIMED_OUT: "TimedOut",
    Status.CANCELLED: "Cancelled",
    Status.SKIPPED: "Skipped",
}


@final
@dataclass(frozen=True, slots=True)
class EmbeddedMetrics:
    """Writes a fan-out's summary as one CloudWatch Embedded Metric Format line.

    Metrics (in ``namespace``, dimension ``Target`` and any ``dimensions`` given): ``Items``,
    ``Succeeded``, ``Failed``, ``TimedOut``, ``Cancelled``, ``Skipped``, ``Retries``,
    ``Throttles`` (Count), ``AdaptiveLimit`` (Count, with ``adaptive=True``), ``LatencyP50``,
    ``LatencyP99`` (Milliseconds) and ``Elapsed`` (Seconds). A journaled run's ``run_id`` is
    at the root too (searchable in Logs Insights, not a dimension). ``stream``: default stdout.

    Example::

        metrics = aiofanout.metrics.EmbeddedMetrics(namespace="Thumbnails")
        await dispatch_many(target, keys, concurrency=100, metrics=metrics)
        # {"_aws": {"Timestamp": ..., "CloudWatchMetrics": [{"Namespace": "Thumbnails", ...
    """

    namespace: str
    dimensions: Mapping[str, str] = field(default_factory=dict)
    stream: IO[str] | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.namespace) <= 1024:
            raise UsageError("EmbeddedMetrics(namespace=...) takes 1 to 1024 characters")
        if len(self.dimensions) + 1 > MAX_DIMENSIONS:
            raise UsageError(
                f"EmbeddedMetrics takes at most {MAX_DIMENSIONS - 1} dimensions beside Target "
                f"(EMF allows {MAX_DIMENSIONS}), got {len(self.dimensions)}"
            )
        if "Target" in self.dimensions:
            raise UsageError("EmbeddedMetrics(dimensions=...): Target is set to the target's name")

    def record(self, summary: FanoutSummary) -> None:
        """Write ``summary`` as one EMF object on one line, and flush."""
        stream = self.stream if self.stream is not None else sys.stdout
        stream.write(json.dumps(self.document(summary)) + "\n")
        stream.flush()

    def document(self, summary: FanoutSummary) -> dict[str, Any]:
        """The EMF document of ``summary`` (what :meth:`record` writes)."""
        values: dict[str, tuple[float, str]] = {"Items": (summary.items, "Count")}
        for status, name in _STATUS_METRICS.items():
            values[name] = (summary.counts.get(status, 0), "Count")
        values["Retries"] = (summary.retries, "Count")
        values["Throttles"] = (summary.throttles, "Count")
        if summary.limit is not None:
            values["AdaptiveLimit"] = (summary.limit, "Count")
        values["LatencyP50"] = (round(summary.p50_ms, 3), "Milliseconds")
        values["LatencyP99"] = (round(summary.p99_ms, 3), "Milliseconds")
        values["Elapsed"] = (round(summary.elapsed, 6), "Seconds")
        directive = {
            "Namespace": self.namespace,
            "Dimensions": [["Target", *self.dimensions]],
            "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in values.items()],
        }
        document: dict[str, Any] = {
            "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [directive]},
            "Target": summary.target,
            **self.dimensions,
            **{name: value for name, (value, _) in values.items()},
        }
        if summary.run_id is not None:
            document["run_id"] = summary.run_id
        return document


@final
class OpenTelemetryMetrics:
    """Records a fan-out's summary as OpenTelemetry counters and histograms.

    Through ``meter_provider`` (default: the global one, so it records wherever an SDK is
    configured, and nothing without one), meter ``aiofanout``: counters
    ``aiofanout.fanout.items`` (attribute ``aiofanout.status``), ``aiofanout.fanout.retries``,
    ``aiofanout.fanout.throttles``; histograms ``aiofanout.fanout.latency.p50`` and
    ``aiofanout.fanout.latency.p99`` (ms), ``aiofanout.fanout.duration`` (s) and
    ``aiofanout.fanout.adaptive_limit``; every one with attribute ``aiofanout.target``. Needs
    ``opentelemetry-api``: ``pip install 'aiofanout[otel]'``.

    Example::

        metrics = aiofanout.metrics.OpenTelemetryMetrics()
        await dispatch_many(target, keys, concurrency=100, metrics=metrics)
    """

    def __init__(self, meter_provider: Any = None) -> None:
        self.meter_provider = meter_provider
        self._instruments: dict[str, Any] | None = None

    def record(self, summary: FanoutSummary) -> None:
        """Add ``summary`` to the counters and histograms."""
        instruments = self._instruments or self._make_instruments()
        target = {"aiofanout.target": summary.target}
        for status, count in summary.counts.items():
            if count:
                instruments["items"].add(count, {**target, "aiofanout.status": status.value})
        instruments["retries"].add(summary.retries, target)
        instruments["throttles"].add(summary.throttles, target)
        instruments["p50"].record(summary.p50_ms, target)
        instruments["p99"].record(summary.p99_ms, target)
        instruments["duration"].record(summary.elapsed, target)
        if summary.limit is not None:
            instruments["limit"].record(summary.limit, target)

    def _make_instruments(self) -> dict[str, Any]:
        try:
            from opentelemetry import metrics
        except ImportError as exc:
            raise UsageError(
                "OpenTelemetryMetrics needs opentelemetry-api: pip install 'aiofanout[otel]'"
            ) from exc
        provider = self.meter_provider or metrics.get_meter_provider()
        meter = provider.get_meter("aiofanout")
        self._instruments = {
            "items": meter.create_counter("aiofanout.fanout.items", "{item}", "Items by status"),
            "retries": meter.create_counter("aiofanout.fanout.retries", "{attempt}"),
            "throttles": meter.create_counter("aiofanout.fanout.throttles", "{attempt}"),
            "p50": meter.create_histogram("aiofanout.fanout.latency.p50", "ms"),
            "p99": meter.create_histogram("aiofanout.fanout.latency.p99", "ms"),
            "duration": meter.create_histogram("aiofanout.fanout.duration", "s"),
            "limit": meter.create_histogram("aiofanout.fanout.adaptive_limit", "{call}"),
        }
        return self._instruments


def target_name(target: object) -> str:
    """The name a target is known by: its function, queue, topic, URL or task name."""
    for attribute in ("function_name", "url"):
        if isinstance(value := getattr(target, attribute, None), str):
            return value
    if isinstance(queue_url := getattr(target, "queue_url", None), str):
        return queue_url.rstrip("/").rsplit("/", 1)[-1]  # the queue's name
    if isinstance(topic_arn := getattr(target, "topic_arn", None), str):
        return topic_arn.rsplit(":", 1)[-1]  # the topic's name
    name = getattr(target, "name", None)
    if isinstance(name, str):
        return name
    return str(getattr(target, "__qualname__", type(target).__name__))


def record_metrics(
    recorders: MetricsRecorder | tuple[MetricsRecorder, ...] | None,
    result: FanoutResult[Any],
    target: object,
) -> None:
    """Record ``result``'s summary with each recorder ``metrics=`` named."""
    if recorders is None:
        return
    many = recorders if isinstance(recorders, tuple) else (recorders,)
    summary = FanoutSummary.of(result, target=target_name(target))
    for recorder in many:
        recorder.record(summary)


def check_recorders(recorders: object) -> None:
    """Raise :class:`UsageError` unless ``recorders`` is what ``metrics=`` takes."""
    many = recorders if isinstance(recorders, tuple) else (recorders,)
    for recorder in many:
        if not isinstance(recorder, MetricsRecorder):
            raise UsageError(
                f"metrics= takes an EmbeddedMetrics, an OpenTelemetryMetrics, or a tuple of "
                f"them (anything with record(summary)), got {type(recorder).__name__}"
            )
