"""A fan-out's summary as metrics: EMF validated against its specification, OTel through the SDK."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import aiofanout
from aiofanout import UsageError
from aiofanout.metrics import EmbeddedMetrics, OpenTelemetryMetrics
from aiofanout.targets import Batching, Target

# The units the EMF specification allows (CloudWatch's StandardUnit).
EMF_UNITS = {
    *[
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
    ],
    *["Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "None"],
    *(f"{u}/Second" for u in ["Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes"]),
    *(f"{u}/Second" for u in ["Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Count"]),
}


def check_emf(document: dict[str, Any]) -> None:
    """Fail unless ``document`` is an EMF document as the specification states it."""
    metadata = document["_aws"]
    assert isinstance(metadata["Timestamp"], int)
    assert metadata["Timestamp"] > 1_600_000_000_000  # epoch milliseconds
    for directive in metadata["CloudWatchMetrics"]:
        assert set(directive) <= {"Namespace", "Dimensions", "Metrics"}
        assert 1 <= len(directive["Namespace"]) <= 1024
        for dimension_set in directive["Dimensions"]:
            assert len(dimension_set) <= 30
            for name in dimension_set:
                assert isinstance(document[name], str)  # the member is at the root
        assert 1 <= len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            assert set(metric) <= {"Name", "Unit", "StorageResolution"}
            assert 1 <= len(metric["Name"]) <= 1024
            assert metric.get("Unit", "None") in EMF_UNITS
            value = document[metric["Name"]]
            assert isinstance(value, int | float)
            assert not isinstance(value, bool)


async def flaky_fanout(**options: Any) -> aiofanout.FanoutResult[int]:
    seen: set[int] = set()

    async def resize(item: int) -> int:
        if item % 3 == 0 and item not in seen:
            seen.add(item)
            raise ConnectionResetError("once")
        if item == 4:
            raise ValueError("final")
        return item

    retry = aiofanout.Retry(attempts=2, base=0, retry_on=(ConnectionResetError,))
    return await aiofanout.dispatch_many(resize, range(10), concurrency=3, retry=retry, **options)


async def test_the_emf_line_is_a_valid_document_of_the_summary() -> None:
    stream = io.StringIO()
    metrics = EmbeddedMetrics(namespace="Thumbnails", dimensions={"Stage": "prod"}, stream=stream)
    result = await flaky_fanout(metrics=metrics)
    (line,) = stream.getvalue().splitlines()
    document = json.loads(line)
    check_emf(document)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Thumbnails"
    assert directive["Dimensions"] == [["Target", "Stage"]]
    assert document["Target"] == "flaky_fanout.<locals>.resize"
    assert document["Stage"] == "prod"
    assert (document["Items"], document["Succeeded"], document["Failed"]) == (10, 9, 1)
    assert document["Retries"] == result.retries == 4  # items 0, 3, 6, 9
    assert document["LatencyP99"] == pytest.approx(result.latency.p99 * 1000, abs=0.001)
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units["LatencyP50"] == "Milliseconds"
    assert units["Failed"] == "Count"
    assert "AdaptiveLimit" not in document  # not an adaptive fan-out


async def test_an_adaptive_fanout_reports_its_limit_and_throttles() -> None:
    stream = io.StringIO()
    calls = 0

    async def busy(item: int) -> int:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise aiofanout.Throttled("slow down")
        return item

    retry = aiofanout.Retry(base=0)
    await aiofanout.dispatch_many(
        busy,
        range(6),
        concurrency=4,
        adaptive=True,
        retry=retry,
        metrics=EmbeddedMetrics(namespace="N", stream=stream),
    )
    document = json.loads(stream.getvalue())
    check_emf(document)
    assert document["Throttles"] == 2
    assert 1 <= document["AdaptiveLimit"] <= 4


def test_the_target_s_name_is_the_function_or_queue_name() -> None:
    from aiofanout._metrics import target_name
    from aiofanout.targets import LambdaTarget, SqsTarget

    assert target_name(LambdaTarget("thumbnails", task=None)) == "thumbnails"
    url = "http://127.0.0.1:5000/123456789012/work"
    assert target_name(SqsTarget(url, task=None)) == "work"


def test_emf_options_are_checked() -> None:
    with pytest.raises(UsageError, match="at most 29 dimensions"):
        EmbeddedMetrics(namespace="N", dimensions={f"d{i}": "x" for i in range(30)})
    with pytest.raises(UsageError, match="1 to 1024"):
        EmbeddedMetrics(namespace="")


async def test_metrics_takes_only_recorders() -> None:
    wrong: Any = "cloudwatch"
    with pytest.raises(UsageError, match="metrics= takes"):
        await aiofanout.dispatch_many(abs, [1], concurrency=1, metrics=wrong)
    with pytest.raises(UsageError, match="stream"):
        aiofanout.stream(abs, [1], concurrency=1, metrics=EmbeddedMetrics(namespace="N"))


async def test_opentelemetry_counters_and_histograms_through_the_sdk() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    stream = io.StringIO()
    both = (OpenTelemetryMetrics(provider), EmbeddedMetrics(namespace="N", stream=stream))
    result = await flaky_fanout(metrics=both)
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "aiofanout"
            for metric in scope.metrics:
                points[metric.name] = list(metric.data.data_points)
    by_status = {
        p.attributes["aiofanout.status"]: p.value for p in points["aiofanout.fanout.items"]
    }
    assert by_status == {"succeeded": 9, "failed": 1}
    (retries,) = points["aiofanout.fanout.retries"]
    assert retries.value == result.retries
    assert retries.attributes["aiofanout.target"] == "flaky_fanout.<locals>.resize"
    (p99,) = points["aiofanout.fanout.latency.p99"]
    assert p99.count == 1
    assert p99.sum == pytest.approx(result.latency.p99 * 1000)
    assert json.loads(stream.getvalue())["Items"] == 10  # the EMF line beside it
    provider.shutdown()


async def test_throttles_are_counted_without_adaptive_in_items_and_batches() -> None:
    calls = 0

    async def busy(item: int) -> int:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise aiofanout.Throttled("slow down")
        return item

    retry = aiofanout.Retry(base=0)
    result = await aiofanout.dispatch_many(busy, range(5), concurrency=1, retry=retry)
    assert (result.ok, result.throttles) == (True, 3)

    class Bulk(Target):
        batching = Batching(max_items=4)
        sent = 0

        async def call_batch(self, payloads: Sequence[Any], *, timeout: float | None) -> list[Any]:
            self.sent += 1
            if self.sent == 1:  # the first batch: its first two items throttled
                return [aiofanout.Throttled("later"), aiofanout.Throttled("later"), 1, 1]
            return list(payloads)

    stream = io.StringIO()
    metrics = EmbeddedMetrics(namespace="N", stream=stream)
    batched = await aiofanout.dispatch_many(
        Bulk(), range(4), concurrency=1, retry=retry, metrics=metrics
    )
    assert (batched.ok, batched.throttles) == (True, 2)
    assert json.loads(stream.getvalue())["Throttles"] == 2


def test_emf_and_logs_work_without_opentelemetry() -> None:
    # Without opentelemetry installed (blocked here: the traces import it when it is there).
    script = """
import asyncio, io, sys
sys.modules["opentelemetry"] = None
import aiofanout, aiofanout.logs, aiofanout.metrics
stream = io.StringIO()
metrics = aiofanout.metrics.EmbeddedMetrics(namespace="N", stream=stream)
asyncio.run(aiofanout.dispatch_many(abs, [1, -2], concurrency=2, metrics=metrics))
assert '"Items": 2' in stream.getvalue(), stream.getvalue()
print(sorted(n for n, m in sys.modules.items() if n.startswith("opentelemetry") and m))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
