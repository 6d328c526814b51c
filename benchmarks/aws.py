"""The AWS targets on the lean path against aioboto3, side by side, in one run.

    python benchmarks/aws.py [--write] [--repeats 5]

Every sample is a fresh process running one variant alone (its peak RSS is that variant's), the
variants taking turns within each repeat. Each process first runs 100 calls untimed (imports and
botocore's service models load once per process); the timed run makes its own client. CPU is the
client process's own (user + system), per call or message.

(1) Lambda Invoke on a zero-latency stub in another process (``_stub.py``), RequestResponse and
    Event: dispatch_many(LambdaTarget) on the lean path (the default) and on aioboto3 (what it
    was; ``AIOFANOUT_AWS_CLIENT=aioboto3``), a hand-written aioboto3 invoke loop, and an unsigned
    aiohttp loop (aiohttp's client alone, which the lean path no longer uses).
(2) SQS SendMessageBatch on the stub: SqsTarget on both paths, a hand-written aioboto3 loop.
(3) SQS round trip with replies=True on the stub (it answers each task envelope on its reply
    queue at once): SqsTarget on both paths.
    With ``--instructions 1``, also the instructions per invoke of (1), counted by valgrind
    (cachegrind): the difference of a 1,300- and a 300-invoke run over 1,000, which no other
    load on the machine changes.
(4) The local runtime end to end (``_runtime.py``, a function of 4 environments returning its
    event): LambdaTarget on both paths, the hand-written aioboto3 loop, unsigned aiohttp.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _bench import Measure, arguments, machine, own_peak_rss_mb, publish, table

HERE = Path(__file__).parent
REGION = "us-east-1"
CAP = 50
INVOKES = 5000
MESSAGES = 20_000
ROUND_TRIPS = 3000
LOCAL_INVOKES = 2000
LOCAL_FUNCTION = "trivial-4"
WARM_UP = 100


def body(i: int) -> dict[str, Any]:
    return {"n": i, "key": f"images/{i:06d}.png"}


# -- the variants (each runs in a child process) ---------------------------------------------


async def target_invoke(endpoint: str, n: int, kind: str) -> None:
    from aiofanout import LambdaTarget, dispatch_many

    function = LOCAL_FUNCTION if kind == "local" else "fn"
    invocation_type = "Event" if kind == "Event" else "RequestResponse"
    target = LambdaTarget(
        function,
        task=None,
        invocation_type=invocation_type,
        endpoint_url=endpoint,
        region_name=REGION,
    )
    result = await dispatch_many(target, (body(i) for i in range(n)), concurrency=CAP)
    assert result.ok, result.errors()[:3]
    assert len(result) == n


async def hand_invoke(endpoint: str, n: int, kind: str) -> None:
    import aioboto3
    from aiobotocore.config import AioConfig

    function = LOCAL_FUNCTION if kind == "local" else "fn"
    invocation_type = "Event" if kind == "Event" else "RequestResponse"
    session = aioboto3.Session(region_name=REGION)
    config = AioConfig(max_pool_connections=CAP, retries={"total_max_attempts": 1})
    sem = asyncio.Semaphore(CAP)
    async with session.client("lambda", endpoint_url=endpoint, config=config) as client:

        async def invoke(i: int) -> None:
            async with sem:
                response = await client.invoke(
                    FunctionName=function,
                    InvocationType=invocation_type,
                    Payload=json.dumps(body(i)),
                )
                answer = await response["Payload"].read()
                if invocation_type == "RequestResponse":
                    json.loads(answer)

        await asyncio.gather(*(invoke(i) for i in range(n)))


async def unsigned_invoke(endpoint: str, n: int, kind: str) -> None:
    import aiohttp

    function = LOCAL_FUNCTION if kind == "local" else "fn"
    url = f"{endpoint}/2015-03-31/functions/{function}/invocations"
    sem = asyncio.Semaphore(CAP)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CAP)) as session:

        async def invoke(i: int) -> None:
            async with sem, session.post(url, data=json.dumps(body(i)).encode()) as response:
                json.loads(await response.read())

        await asyncio.gather(*(invoke(i) for i in range(n)))


async def target_send(endpoint: str, n: int, kind: str) -> None:
    from aiofanout import SqsTarget, dispatch_many

    target = SqsTarget(f"{endpoint}/123456789012/work", task=None, endpoint_url=endpoint)
    result = await dispatch_many(target, (body(i) for i in range(n)), concurrency=8)
    assert result.ok, result.errors()[:3]


async def hand_send(endpoint: str, n: int, kind: str) -> None:
    import aioboto3
    from aiobotocore.config import AioConfig

    session = aioboto3.Session(region_name=REGION)
    config = AioConfig(max_pool_connections=CAP, retries={"total_max_attempts": 1})
    url = f"{endpoint}/123456789012/work"
    sem = asyncio.Semaphore(8)
    async with session.client("sqs", endpoint_url=endpoint, config=config) as sqs:

        async def send(start: int) -> None:
            entries = [
                {"Id": str(i), "MessageBody": json.dumps(body(i))}
                for i in range(start, min(n, start + 10))
            ]
            async with sem:
                response = await sqs.send_message_batch(QueueUrl=url, Entries=entries)
            assert not response.get("Failed")

        await asyncio.gather(*(send(s) for s in range(0, n, 10)))


async def target_round_trip(endpoint: str, n: int, kind: str) -> None:
    from aiofanout import SqsTarget, dispatch_many

    target = SqsTarget(
        f"{endpoint}/123456789012/work", task="echo", replies=True, endpoint_url=endpoint
    )
    items = (body(i) for i in range(n))
    result = await dispatch_many(target, items, concurrency=200, timeout=60)
    assert result.ok, result.errors()[:3]
    assert result.values()[-1] == body(n - 1)


VARIANTS: dict[str, Callable[[str, int, str], Awaitable[None]]] = {
    "target": target_invoke,
    "hand": hand_invoke,
    "unsigned": unsigned_invoke,
    "send": target_send,
    "hand_send": hand_send,
    "round_trip": target_round_trip,
}


def child(variant: str, path: str, endpoint: str, n: int, kind: str) -> None:
    """Run one variant here; print its rate, CPU per call and peak RSS as JSON.

    A short untimed run first: imports and botocore's service models, loaded once per
    process, are not the per-call cost. The timed run makes its own client.
    """
    os.environ["AIOFANOUT_AWS_CLIENT"] = path
    run = VARIANTS[variant]
    asyncio.run(run(endpoint, WARM_UP, kind))
    cpu, started = time.process_time(), time.perf_counter()
    asyncio.run(run(endpoint, n, kind))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"rate": n / wall, "cpu_ms": cpu / n * 1000, "rss": own_peak_rss_mb()}))


# -- instructions per invoke (valgrind) -------------------------------------------------------

COUNTED = (300, 1300)


def instructions(variant: str, path: str, endpoint: str, n: int, kind: str) -> int:
    """Instructions of one child run of ``n`` calls under cachegrind (its own, not the stub's)."""
    argv = ["child", variant, path, endpoint, str(n), kind]
    done = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         sys.executable, __file__, *argv],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    counted = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    assert counted is not None, done.stderr[-2000:]
    return int(counted.group(1).replace(",", ""))


def instruction_rows(endpoint: str) -> str:
    rows = []
    for kind in ("RequestResponse", "Event"):
        per: dict[str, float] = {}
        for name, variant, path in (
            ("dispatch_many(LambdaTarget), lean path", "target", "lean"),
            ("hand-written aioboto3 invoke loop", "hand", "aioboto3"),
        ):
            small, large = (instructions(variant, path, endpoint, n, kind) for n in COUNTED)
            per[name] = (large - small) / (COUNTED[1] - COUNTED[0])
            print(f"  {kind} {name}: {per[name]:,.0f} instructions per invoke", file=sys.stderr)
        hand = per["hand-written aioboto3 invoke loop"]
        rows += [[kind, n, f"{v / 1000:,.0f}k", f"{hand / v:.2f}x"] for n, v in per.items()]
    return table(["type", "variant", "instructions per invoke", "aioboto3 loop / this"], rows)


# -- the parent: servers, turns, tables ------------------------------------------------------


class Variant:
    """One row: how to run it (in a child) and its samples."""

    def __init__(self, name: str, variant: str, path: str, n: int, kind: str) -> None:
        self.name, self.variant, self.path, self.n, self.kind = name, variant, path, n, kind
        self.rate = Measure(name, [])
        self.cpu = Measure(name, [])
        self.rss = Measure(name, [])

    def sample(self, endpoint: str) -> None:
        argv = ["child", self.variant, self.path, endpoint, str(self.n), self.kind]
        out = subprocess.run(
            [sys.executable, __file__, *argv], check=True, capture_output=True, text=True
        ).stdout.strip()
        got = json.loads(out.splitlines()[-1])
        self.rate.samples.append(got["rate"])
        self.cpu.samples.append(got["cpu_ms"])
        self.rss.samples.append(got["rss"])
        print(f"  {self.name}: {got['rate']:,.0f}/s, {got['cpu_ms']:.3f} ms CPU", file=sys.stderr)


def groups() -> dict[str, list[Variant]]:
    lean, boto = "lean", "aioboto3"
    invoke = [
        ("dispatch_many(LambdaTarget), lean path", "target", lean),
        ("dispatch_many(LambdaTarget), aioboto3 path", "target", boto),
        ("hand-written aioboto3 invoke loop", "hand", boto),
    ]
    return {
        "RequestResponse": [
            *(Variant(n, v, p, INVOKES, "RequestResponse") for n, v, p in invoke),
            Variant("aiohttp, unsigned (its client alone)", "unsigned", lean, INVOKES, "RR"),
        ],
        "Event": [Variant(n, v, p, INVOKES, "Event") for n, v, p in invoke],
        "send": [
            Variant("SqsTarget, lean path", "send", lean, MESSAGES, ""),
            Variant("SqsTarget, aioboto3 path", "send", boto, MESSAGES, ""),
            Variant(
                "hand-written aioboto3 send_message_batch loop", "hand_send", boto, MESSAGES, ""
            ),
        ],
        "round_trip": [
            Variant("SqsTarget(replies=True), lean path", "round_trip", lean, ROUND_TRIPS, ""),
            Variant("SqsTarget(replies=True), aioboto3 path", "round_trip", boto, ROUND_TRIPS, ""),
        ],
        "local": [
            *(Variant(n, v, p, LOCAL_INVOKES, "local") for n, v, p in invoke),
            Variant("aiohttp, unsigned", "unsigned", lean, LOCAL_INVOKES, "local"),
        ],
    }


def rows(variants: list[Variant], baseline: str, unit: str) -> str:
    base = next(v for v in variants if v.name == baseline)
    lines = [
        [
            v.name,
            v.rate.cell(fmt="{:,.0f}"),
            f"{v.rate.median / base.rate.median:.2f}x",
            v.cpu.cell(fmt="{:.3f}") if unit == "ms" else v.cpu.cell(1000, "{:.1f}"),
            f"{v.rss.median:.0f}",
        ]
        for v in variants
    ]
    cpu = "client CPU per call, ms" if unit == "ms" else "client CPU per message, us"
    return table(["variant", "per second", f"vs {baseline}", cpu, "peak RSS MiB"], lines)


def bars(g: dict[str, list[Variant]]) -> str:
    def median(group: str, name: str, what: str = "rate") -> float:
        variant = next(v for v in g[group] if v.name == name)
        return float(getattr(variant, what).median)

    lean, hand = "dispatch_many(LambdaTarget), lean path", "hand-written aioboto3 invoke loop"
    rr = median("RequestResponse", lean) / median("RequestResponse", hand)
    event = median("Event", lean) / median("Event", hand)
    cpu_rr = median("RequestResponse", lean, "cpu")
    cpu_event = median("Event", lean, "cpu")
    sqs = median("send", "SqsTarget, lean path") / median("send", "SqsTarget, aioboto3 path")
    sqs_cpu = median("send", "SqsTarget, aioboto3 path", "cpu") / median(
        "send", "SqsTarget, lean path", "cpu"
    )
    return table(
        ["bar", "measured", "met"],
        [
            ["RequestResponse: lean LambdaTarget at least 4x the aioboto3 loop's invokes/s",
             f"{rr:.2f}x", str(rr >= 4)],
            ["Event: lean LambdaTarget at least 4x the aioboto3 loop's invokes/s",
             f"{event:.2f}x", str(event >= 4)],
            ["CPU per invoke at most 0.2 ms (RequestResponse, Event)",
             f"{cpu_rr:.3f}, {cpu_event:.3f} ms", str(max(cpu_rr, cpu_event) <= 0.2)],
            ["SqsTarget SendMessageBatch at least 2x today's (aioboto3) messages/s",
             f"{sqs:.2f}x (CPU per message {sqs_cpu:.2f}x less)", str(sqs >= 2)],
        ],
    )  # fmt: skip


def start(script: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(HERE / script), str(port)])


def main() -> None:
    args = arguments(__doc__, instructions=0)
    # SIGTERM ends the run as Ctrl-C does: the servers below are stopped either way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    from aiofanout.testing import FAKE_CREDENTIALS, free_port, wait_for_http

    os.environ.update(FAKE_CREDENTIALS)
    stub_port, runtime_port = free_port(), free_port()
    stub, runtime = start("_stub.py", stub_port), start("_runtime.py", runtime_port)
    stub_url, runtime_url = f"http://127.0.0.1:{stub_port}", f"http://127.0.0.1:{runtime_port}"
    g = groups()
    try:
        wait_for_http(stub_url + "/", process=stub)
        wait_for_http(runtime_url + "/", process=runtime)
        for _ in range(args.repeats):
            for group, variants in g.items():
                for variant in variants:
                    variant.sample(runtime_url if group == "local" else stub_url)
        counted = instruction_rows(stub_url) if args.instructions else ""
    finally:
        for process in (stub, runtime):
            process.terminate()
            process.wait(10)
    hand = "hand-written aioboto3 invoke loop"
    text = (
        f"{args.repeats} repeats, {machine()}; medians (min-max). Each sample is a fresh process "
        "running one variant (100 calls untimed first, then the timed run with its own client); "
        "CPU is that process's own.\n\n"
        f"Lambda Invoke, RequestResponse, on the zero-latency stub: {INVOKES} invokes, "
        f"{CAP} in flight:\n\n"
        + rows(g["RequestResponse"], hand, "ms")
        + f"\n\nLambda Invoke, Event, on the stub: {INVOKES} invokes, {CAP} in flight:\n\n"
        + rows(g["Event"], hand, "ms")
        + f"\n\nSQS SendMessageBatch on the stub: {MESSAGES:,} messages, batches of 10, "
        "8 in flight, messages/s:\n\n"
        + rows(g["send"], "SqsTarget, aioboto3 path", "us")
        + f"\n\nSQS round trip with replies=True on the stub (it replies at once): "
        f"{ROUND_TRIPS} items, 200 waiting, items/s:\n\n"
        + rows(g["round_trip"], "SqsTarget(replies=True), aioboto3 path", "us")
        + f"\n\nThe local runtime end to end (a function of 4 environments that returns its "
        f"event): {LOCAL_INVOKES} invokes, {CAP} in flight:\n\n"
        + rows(g["local"], hand, "ms")
        + "\n\n"
        + bars(g)
        + "\n"
    )
    if counted:
        text += (
            "\nInstructions per invoke on the stub, counted by valgrind (cachegrind) in the "
            f"client process: the difference of a {COUNTED[1]:,}- and a {COUNTED[0]}-invoke run "
            "over their difference (load on the machine does not change it):\n\n" + counted + "\n"
        )
    publish("aws", text, args.write)


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        variant, path, endpoint, n, kind = sys.argv[2:7]
        child(variant, path, endpoint, int(n), kind)
    else:
        main()
