"""The engine's cost with OpenTelemetry absent, installed but unconfigured, and tracing.

    python benchmarks/tracing.py [--write] [--repeats 5] [--jobs 100000]

The engine benchmark's jobs (``await asyncio.sleep(0)``, cap 1000) through the bare worker pool
((b) of ``engine.py``), ``dispatch_many`` and ``dispatch_many`` with ``timeout`` and ``Retry``,
each mode in a fresh process: ``absent`` blocks ``opentelemetry`` before aiofanout is imported
(the ``otel`` extra not installed); ``no provider`` has the API but no SDK (the API's proxy
provider); ``SDK`` sets the SDK's ``TracerProvider`` with a processor that hands every span to an
exporter that drops it, so what is measured is making the spans, not shipping them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from _bench import Measure, arguments, machine, publish, table, timed

CAP = 1000
MODES = ("absent", "no provider", "SDK")


def setup(mode: str) -> None:
    if mode == "absent":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]
    elif mode == "SDK":
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            SimpleSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class Dropping(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(Dropping()))
        trace.set_tracer_provider(provider)


def variants() -> dict[str, Callable[[int], Awaitable[None]]]:
    import aiofanout  # after setup: with opentelemetry blocked or not

    async def job(_: int) -> None:
        await asyncio.sleep(0)

    async def pool(n: int) -> None:
        it = iter(range(n))

        async def worker() -> None:
            for i in it:
                await job(i)

        await asyncio.gather(*(worker() for _ in range(CAP)))

    async def ours(n: int) -> None:
        assert (await aiofanout.dispatch_many(job, range(n), concurrency=CAP)).ok

    async def ours_timeout_retry(n: int) -> None:
        retry = aiofanout.Retry(attempts=3)
        result = await aiofanout.dispatch_many(
            job, range(n), concurrency=CAP, timeout=30, retry=retry
        )
        assert result.ok

    return {
        "(b) worker pool": pool,
        "dispatch_many": ours,
        "dispatch_many, timeout + Retry": ours_timeout_retry,
    }


def child(mode: str, n: int, repeats: int) -> None:
    """Run every variant ``repeats`` times in this process; print us/job samples as JSON."""
    setup(mode)
    samples: dict[str, list[float]] = {}
    for _ in range(repeats):
        for name, fn in variants().items():
            seconds = timed(lambda fn=fn: asyncio.run(fn(n)))
            samples.setdefault(name, []).append(seconds / n * 1e6)
    loaded = "opentelemetry" in sys.modules and sys.modules["opentelemetry"] is not None
    print(json.dumps({"samples": samples, "loaded": loaded}))


def main() -> None:
    args = arguments(__doc__, jobs=100_000, child=-1)
    if args.child >= 0:
        child(MODES[args.child], args.jobs, args.repeats)
        return
    rows = []
    per_item: dict[str, float] = {}
    for index, mode in enumerate(MODES):
        argv = [__file__, "--child", str(index), "--jobs", str(args.jobs)]
        argv += ["--repeats", str(args.repeats)]
        out = subprocess.run([sys.executable, *argv], check=True, capture_output=True, text=True)
        report = json.loads(out.stdout.strip().splitlines()[-1])
        measures = {name: Measure(name, s) for name, s in report["samples"].items()}
        pool = measures["(b) worker pool"].median
        for name in ("dispatch_many", "dispatch_many, timeout + Retry"):
            m = measures[name]
            per_item[f"{mode}/{name}"] = m.median
            loaded = "yes" if report["loaded"] else "no"
            rows.append([mode, loaded, name, m.cell(), f"{m.median / pool:.2f}x"])
        print(f"  {mode}: done", file=sys.stderr)
    cost = {
        name: per_item[f"SDK/{name}"] - per_item[f"no provider/{name}"]
        for name in ("dispatch_many", "dispatch_many, timeout + Retry")
    }
    body = (
        f"{args.jobs:,} jobs that `await asyncio.sleep(0)`, cap {CAP}, {args.repeats} repeats "
        f"per mode in a fresh process, {machine()}.\n\n"
        + table(
            ["opentelemetry", "imported", "variant", "us/job, median (min-max)", "vs (b)"], rows
        )
        + "\n\nTracing (one span an item, its attempt's, through the SDK) costs "
        + ", ".join(f"{us:.1f} us per item for {name}" for name, us in cost.items())
        + " over the same run untraced.\n"
    )
    publish("tracing", body, args.write)


if __name__ == "__main__":
    main()
