"""Fan-in on the local stack: round trips beside send-only, Event with replies beside RequestResponse.

    python benchmarks/fanin.py [--write] [--items 1000]

One run, one stack: a moto server (exact SQS), the local Lambda runtime, and a counting proxy in
front of the moto server, through which every SQS call of every side goes (the target, the event
source mapping, the workers' replies, the reply queue's receivers), so the SQS API calls per
item are counted, not estimated. The worker is ``examples/worker.py`` (``thumbnail``: 2-20 ms of
waiting). Prints a markdown table.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from _bench import arguments, machine, publish, table
from aiohttp import web

from aiofanout import LambdaTarget, SqsTarget, dispatch_many
from aiofanout.local import EventSourceMapping, FunctionConfig, LocalLambda
from aiofanout.testing import FAKE_CREDENTIALS, MotoServer

EXAMPLES = str(Path(__file__).resolve().parent.parent / "examples")
REGION = "us-east-1"
SQS_CAP = 100  # items awaiting replies (moto's SQS slows with the queue's depth)
LAMBDA_CAP = 10  # the function's reserved concurrency


class CountingProxy:
    """Forwards every request to the moto server; counts SQS calls by action and queue."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        self._count(request, body)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as upstream:
            payload = await upstream.read()
            drop = {"content-length", "transfer-encoding", "content-encoding", "connection"}
            kept = {k: v for k, v in upstream.headers.items() if k.lower() not in drop}
            return web.Response(status=upstream.status, body=payload, headers=kept)

    def _count(self, request: web.Request, body: bytes) -> None:
        action = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        queue = ""
        with contextlib.suppress(ValueError, AttributeError):
            queue = str(json.loads(body).get("QueueUrl", "")) if body else ""
        self.calls[(action or "other", queue.rpartition("/")[2])] += 1

    def count(self, queue_names: tuple[str, ...]) -> int:
        """Calls on queues whose name starts with one of ``queue_names``."""
        return sum(n for (_, queue), n in self.calls.items() if queue.startswith(queue_names))


@dataclass
class Row:
    run: str
    items: int
    seconds: float
    sqs_calls: int | None
    failed: int

    def cells(self) -> list[str]:
        per_item = f"{self.sqs_calls / self.items:.2f}" if self.sqs_calls is not None else "-"
        return [
            self.run,
            str(self.items),
            f"{self.seconds:.2f}",
            f"{self.items / self.seconds:,.0f}",
            str(self.sqs_calls) if self.sqs_calls is not None else "-",
            per_item,
            str(self.failed),
        ]


class Bench:
    def __init__(self, proxy: CountingProxy, runtime: LocalLambda, items: int) -> None:
        self.proxy, self.runtime, self.items = proxy, runtime, items
        self.session: Any = None

    def sqs(self) -> Any:
        return self.session.client("sqs", endpoint_url=self.proxy.url, region_name=REGION)

    async def work_queue(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        async with self.sqs() as sqs:
            url = (await sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"}))[
                "QueueUrl"
            ]
        await self.runtime.add_event_source(EventSourceMapping(url, "worker", batch_size=10))
        return str(url)

    async def timed(self, run: str, target: Any, concurrency: int, counted: tuple[str, ...]) -> Row:
        keys = [f"img-{i}.png" for i in range(self.items)]
        self.proxy.calls.clear()
        started = time.perf_counter()
        result = await dispatch_many(target, keys, concurrency=concurrency, timeout=60)
        seconds = time.perf_counter() - started
        calls = self.proxy.count(counted) if counted else None
        return Row(run, self.items, seconds, calls, len(result.failures()))

    async def sqs_send_only(self) -> Row:
        url = await self.work_queue("send-only")
        target = SqsTarget(url, task="thumbnail", endpoint_url=self.proxy.url, region_name=REGION)
        row = await self.timed("SQS send only (batches of 10)", target, 20, ("send-only",))
        await self.drain(url)  # the event source works it off before the next run
        return row

    async def sqs_round_trip(self) -> Row:
        url = await self.work_queue("round-trip")
        target = SqsTarget(
            url, task="thumbnail", replies=True, endpoint_url=self.proxy.url, region_name=REGION
        )
        counted = ("round-trip", "aiofanout-replies-")
        return await self.timed("SQS round trip, replies=True", target, SQS_CAP, counted)

    async def lambda_runs(self, lambda_url: str) -> list[Row]:
        sync = LambdaTarget("worker", task="thumbnail", endpoint_url=lambda_url, region_name=REGION)
        event = LambdaTarget(
            "worker",
            task="thumbnail",
            invocation_type="Event",
            replies=True,
            endpoint_url=lambda_url,
            sqs_endpoint_url=self.proxy.url,
            region_name=REGION,
        )
        return [
            await self.timed("Lambda RequestResponse", sync, LAMBDA_CAP, ()),
            await self.timed("Lambda Event, replies=True", event, LAMBDA_CAP, ("aiofanout-",)),
        ]

    async def drain(self, url: str) -> None:
        async with self.sqs() as sqs:
            while True:
                attributes = await sqs.get_queue_attributes(
                    QueueUrl=url,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible",
                    ],
                )
                if not any(int(v) for v in attributes["Attributes"].values()):
                    return
                await asyncio.sleep(0.2)


async def main(items: int) -> str:
    import aioboto3

    os.environ.update(FAKE_CREDENTIALS)
    with MotoServer() as moto:
        proxy = CountingProxy(moto.endpoint_url)
        await proxy.start()
        runtime = LocalLambda(sqs_endpoint_url=proxy.url)
        await runtime.start()
        try:
            runtime.add_function(
                FunctionConfig(
                    "worker",
                    "worker.lambda_handler",
                    code_paths=[EXAMPLES],
                    reserved_concurrency=LAMBDA_CAP,
                    throttle_after=5.0,  # a busy environment frees up in ms: wait, not 429
                )
            )
            bench = Bench(proxy, runtime, items)
            bench.session = aioboto3.Session(region_name=REGION)
            rows = [await bench.sqs_send_only(), await bench.sqs_round_trip()]
            rows += await bench.lambda_runs(runtime.endpoint_url)
        finally:
            await runtime.stop()
            await proxy.stop()
    header = ["run", "items", "seconds", "items/s", "SQS calls", "SQS calls/item", "failed"]
    return table(header, [row.cells() for row in rows])


if __name__ == "__main__":
    args = arguments(__doc__, items=1000)
    result = asyncio.run(main(args.items))
    body = f"{args.items:,} items per run, one run each, {machine()}.\n\n{result}\n"
    publish("fanin", body, args.write)
