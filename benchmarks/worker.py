"""The worker side: SQS batch handler throughput, and the per-item cost of the envelope.

    python benchmarks/worker.py [--write] [--repeats 5]

(1) ``app.lambda_handler`` on 10-record SQS batches of a trivial async task (the reused loop,
as in a warm Lambda), records per second, signed and unsigned; against a baseline handler
that does the minimum by hand (``json.loads`` each body, call the function, collect failures).
(2) Envelope cost per item: encode; encode + sign; decode + validate; decode + verify + validate.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from _bench import Measure, arguments, machine, publish, table

from aiofanout.testing import LambdaContext, sqs_event
from aiofanout.wire import decode_task, encode_task
from aiofanout.worker import App

BATCHES = 300
ITEMS = 20_000


def build(secret: str | None) -> tuple[App, list[dict[str, object]]]:
    app = App("bench", secret=secret)

    @app.task
    async def add(a: int, b: int) -> int:
        return a + b

    from aiofanout import Call

    events = [sqs_event([add.envelope(Call(i, j)) for j in range(10)]) for i in range(BATCHES)]
    return app, events


def handler_throughput(secret: str | None) -> float:
    app, events = build(secret)
    context = LambdaContext()
    start = time.perf_counter()
    for event in events:
        assert app.lambda_handler(event, context) == {"batchItemFailures": []}
    elapsed = time.perf_counter() - start
    app.runner.close()
    return BATCHES * 10 / elapsed


def baseline_throughput() -> float:
    """A hand-written handler: parse each body, call the function, gather failures."""
    _, events = build(None)

    async def add(a: int, b: int) -> int:
        return a + b

    async def handle(event: dict[str, object]) -> dict[str, object]:
        records = event["Records"]
        assert isinstance(records, list)

        async def one(record: dict[str, str]) -> str | None:
            try:
                body = json.loads(record["body"])
                await add(*body["args"])
            except Exception:
                return record["messageId"]
            return None

        failed = [m for m in await asyncio.gather(*(one(r) for r in records)) if m]
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}

    loop = asyncio.new_event_loop()
    start = time.perf_counter()
    for event in events:
        loop.run_until_complete(handle(event))
    elapsed = time.perf_counter() - start
    loop.close()
    return BATCHES * 10 / elapsed


def per_item_us(fn: object) -> float:
    assert callable(fn)
    start = time.perf_counter()
    for i in range(ITEMS):
        fn(i)
    return (time.perf_counter() - start) / ITEMS * 1e6


def main() -> None:
    args = arguments(__doc__)

    arg = {"key": "images/2026/11/23/photo.png", "width": 640, "tags": ["a", "b", "c"]}
    signed = encode_task("resize", [arg], {}, secret="k")
    unsigned = encode_task("resize", [arg], {})
    cost_fns = {
        "encode": lambda i: encode_task("resize", [arg, i], {}),
        "encode + sign": lambda i: encode_task("resize", [arg, i], {}, secret="k"),
        "decode + validate": lambda i: decode_task(unsigned),
        "decode + verify + validate": lambda i: decode_task(signed, secret="k"),
    }
    throughput = {
        "hand-written handler (json.loads + gather)": baseline_throughput,
        "App.lambda_handler, unsigned": lambda: handler_throughput(None),
        "App.lambda_handler, signed": lambda: handler_throughput("k"),
    }
    t_measures: dict[str, Measure] = {}
    c_measures: dict[str, Measure] = {}
    for _ in range(args.repeats):
        for name, fn in throughput.items():
            t_measures.setdefault(name, Measure(name, [])).samples.append(fn())
            print(f"  {name}: {t_measures[name].samples[-1]:,.0f} rec/s", file=sys.stderr)
        for name, cost in cost_fns.items():
            c_measures.setdefault(name, Measure(name, [])).samples.append(per_item_us(cost))
    base = t_measures["hand-written handler (json.loads + gather)"].median
    t_rows = [
        [name, m.cell(fmt="{:,.0f}"), f"{m.median / base:.2f}x"] for name, m in t_measures.items()
    ]
    c_rows = [[name, m.cell()] for name, m in c_measures.items()]
    body = (
        f"{BATCHES} SQS batches of 10 records, a trivial async task, warm (one loop), "
        f"{args.repeats} repeats, {machine()}. The hand-written handler checks nothing "
        "(no signature, no argument validation, no registry).\n\n"
        + table(["handler", "records/s, median (min-max)", "vs hand-written"], t_rows)
        + f"\n\nEnvelope cost per item ({ITEMS:,} items, a {len(unsigned)}-byte envelope):\n\n"
        + table(["step", "us/item, median (min-max)"], c_rows)
        + "\n"
    )
    publish("worker", body, args.write)


if __name__ == "__main__":
    main()
