"""The local Lambda runtime's throughput and latency, side by side, in one run.

    python benchmarks/local.py [--write] [--repeats 5]

The runtime runs in its own process (benchmarks/_runtime.py) with a trivial handler in 1, 2 or 4
awslambdaric environments. At concurrency 50: (a) a raw aiohttp client POSTing to the Invoke API;
(b) ``dispatch_many(LambdaTarget(...))`` on the lean path (the default), every engine feature on
(timeout, retry); against the ceiling, a raw aiohttp POST loop to a trivial aiohttp server on
loopback.
Then cold starts (first invoke of a never-used function), and latency percentiles against
concurrency (4 environments), plotted to benchmarks/local-latency.svg.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from _bench import Measure, arguments, machine, publish, table

import aiofanout
from aiofanout import LambdaTarget, Retry
from aiofanout.testing import FAKE_CREDENTIALS, free_port, wait_for_http

HERE = Path(__file__).parent
INVOKES = 3000
CAP = 50


async def raw_client(url: str, n: int, concurrency: int) -> list[float]:
    """POST n invokes with ``concurrency`` workers; return each latency in seconds."""
    latencies: list[float] = []
    it = iter(range(n))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for i in it:
                started = time.perf_counter()
                async with session.post(url, data=json.dumps({"n": i}).encode()) as response:
                    await response.read()
                    assert response.status == 200, response.status
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def invoke_url(endpoint: str, function: str) -> str:
    return f"{endpoint}/2015-03-31/functions/{function}/invocations"


async def ours(endpoint: str, function: str, n: int) -> None:
    target = LambdaTarget(function, task=None, endpoint_url=endpoint, region_name="us-east-1")
    result = await aiofanout.dispatch_many(
        target,
        ({"n": i} for i in range(n)),
        concurrency=CAP,
        timeout=30,
        retry=Retry(attempts=3),
    )
    assert result.ok, result.failures()[:3]


def rate(n: int, coro_fn) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    asyncio.run(coro_fn())
    return n / (time.perf_counter() - started)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def svg_plot(series: dict[str, list[tuple[int, float]]], path: Path) -> None:
    """A small line chart of latency (ms) against concurrency, log-scaled x, as SVG."""
    import math

    width, height, pad = 640, 360, 50
    xs = sorted({x for points in series.values() for x, _ in points})
    ymax = max(y for points in series.values() for _, y in points) * 1.1
    lx = [math.log(x) for x in xs]

    def px(x: int) -> float:
        return pad + (math.log(x) - lx[0]) / ((lx[-1] - lx[0]) or 1) * (width - 2 * pad)

    def py(y: float) -> float:
        return height - pad - y / ymax * (height - 2 * pad)

    colors = ["#1f77b4", "#ff7f0e", "#d62728"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="black"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="black"/>',
        f'<text x="{width / 2}" y="{height - 12}" text-anchor="middle">concurrency (log scale)</text>',
        f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" text-anchor="middle">latency, ms</text>',
        f'<text x="{width / 2}" y="20" text-anchor="middle">local runtime, 4 environments, trivial handler</text>',
    ]
    for x in xs:
        parts.append(
            f'<text x="{px(x):.0f}" y="{height - pad + 16}" text-anchor="middle">{x}</text>'
        )
    for i in range(5):
        y = ymax * i / 4
        parts.append(f'<text x="{pad - 6}" y="{py(y) + 4:.0f}" text-anchor="end">{y:.0f}</text>')
    for (name, points), color in zip(series.items(), colors, strict=False):
        d = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{d}"/>')
        lx_, ly_ = points[-1]
        parts.append(
            f'<text x="{px(lx_) - 4:.0f}" y="{py(ly_) - 6:.0f}" text-anchor="end" fill="{color}">{name}</text>'
        )
    parts.append("</svg>")
    path.write_text("\n".join(parts))


def main() -> None:
    args = arguments(__doc__)
    os.environ.update(FAKE_CREDENTIALS)
    runtime_port, ceiling_port = free_port(), free_port()
    runtime = subprocess.Popen([sys.executable, str(HERE / "_runtime.py"), str(runtime_port)])
    ceiling = subprocess.Popen([sys.executable, str(HERE / "_ceiling.py"), str(ceiling_port)])
    endpoint = f"http://127.0.0.1:{runtime_port}"
    try:
        wait_for_http(endpoint + "/", process=runtime)
        wait_for_http(f"http://127.0.0.1:{ceiling_port}/", process=ceiling)
        for envs in (1, 2, 4):  # warm every environment up
            asyncio.run(raw_client(invoke_url(endpoint, f"trivial-{envs}"), 200, CAP))
        variants = {
            "ceiling: aiohttp POST loop to a trivial aiohttp server": (
                lambda: raw_client(f"http://127.0.0.1:{ceiling_port}/x", INVOKES, CAP)
            )
        }
        for envs in (1, 2, 4):
            url = invoke_url(endpoint, f"trivial-{envs}")
            variants[f"(a) raw aiohttp client, {envs} env"] = lambda url=url: raw_client(
                url, INVOKES, CAP
            )
            variants[f"(b) dispatch_many(LambdaTarget), {envs} env"] = lambda envs=envs: ours(
                endpoint, f"trivial-{envs}", INVOKES
            )
        measures: dict[str, Measure] = {}
        p50s: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            for name, make in variants.items():
                started = time.perf_counter()
                latencies = asyncio.run(make())
                sample = INVOKES / (time.perf_counter() - started)
                measures.setdefault(name, Measure(name, [])).samples.append(sample)
                if latencies:
                    p50s.setdefault(name, []).append(statistics.median(latencies) * 1000)
                print(f"  {name}: {sample:,.0f}/s", file=sys.stderr)
        cold = []
        for i in range(10):
            started = time.perf_counter()
            asyncio.run(raw_client(invoke_url(endpoint, f"cold-{i}"), 1, 1))
            cold.append((time.perf_counter() - started) * 1000)
        warm = asyncio.run(raw_client(invoke_url(endpoint, "trivial-1"), 200, 1))
        sweep: dict[str, list[tuple[int, float]]] = {"p50": [], "p95": [], "p99": []}
        sweep_rows = []
        for concurrency in (1, 2, 5, 10, 25, 50, 100):
            lat = asyncio.run(raw_client(invoke_url(endpoint, "trivial-4"), 1500, concurrency))
            ms = [v * 1000 for v in lat]
            values = {
                "p50": percentile(ms, 0.5),
                "p95": percentile(ms, 0.95),
                "p99": percentile(ms, 0.99),
            }
            for key, value in values.items():
                sweep[key].append((concurrency, value))
            sweep_rows.append(
                [str(concurrency), *(f"{values[k]:.1f}" for k in ("p50", "p95", "p99"))]
            )
        svg_plot(sweep, HERE / "local-latency.svg")
    finally:
        for process in (runtime, ceiling):
            process.terminate()
            process.wait(10)

    rows = []
    for name, m in measures.items():
        p50 = f"{statistics.median(p50s[name]):.1f}" if name in p50s else "-"
        rows.append([name, m.cell(fmt="{:,.0f}"), p50])
    prototype = {1: 1200, 2: 1500, 4: 2400}
    bars = []
    for envs, proto in prototype.items():
        got = measures[f"(a) raw aiohttp client, {envs} env"].median
        bars.append(
            [
                f"(a) {envs} env within 2x of the prototype's {proto:,}/s",
                f"{got:,.0f}/s ({proto / got:.2f}x slower)" if got < proto else f"{got:,.0f}/s",
                str(got * 2 >= proto),
            ]
        )
    best_b = max(measures[f"(b) dispatch_many(LambdaTarget), {e} env"].median for e in (1, 2, 4))
    bars.append(["(b) at least 500 invokes/s end to end", f"{best_b:,.0f}/s", str(best_b >= 500)])
    text = (
        f"{INVOKES} invokes per run at concurrency {CAP}, {args.repeats} repeats, {machine()}. "
        "The runtime and the ceiling server each run in their own process; environments beyond "
        "the count queue (`throttle_after=60`) instead of answering 429, as in the prototype.\n\n"
        + table(["variant", "invokes/s, median (min-max)", "p50 ms (raw client)"], rows)
        + f"\n\nCold start (first invoke of a new function, process start + import of a trivial "
        f"handler), 10 functions: median {statistics.median(cold):.0f} ms "
        f"(min {min(cold):.0f}, max {max(cold):.0f}); a warm invoke at concurrency 1: "
        f"p50 {statistics.median(warm) * 1000:.2f} ms.\n\n"
        "Latency against concurrency, 4 environments, raw client, 1500 invokes each "
        "(plot: [local-latency.svg](local-latency.svg)):\n\n"
        + table(["concurrency", "p50 ms", "p95 ms", "p99 ms"], sweep_rows)
        + "\n\n"
        + table(["bar", "measured", "met"], bars)
        + "\n"
    )
    publish("local", text, args.write)


if __name__ == "__main__":
    main()
