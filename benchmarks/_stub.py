"""A zero-latency stand-in for SQS (JSON protocol) and the Lambda Invoke API, in its own process.

    python benchmarks/_stub.py PORT

So the client side is the limit: it answers at once, from a separate process (2 cores: the
server must not share the client's event loop). Invoke answers as Lambda does for each type
(200 with the payload echoed, 202, 204). SQS keeps its queues in memory and plays the worker
too: a task envelope sent to any queue with a ``reply_to`` gets its reply (the first argument)
on that queue at once, so a ``replies=True`` round trip measures the orchestrator alone.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import sys
from typing import Any

from aiohttp import web

from aiofanout.wire import ReplyEnvelope, decode_task, encode_reply

ACCOUNT = "123456789012"
queues: dict[str, collections.deque[dict[str, str]]] = collections.defaultdict(collections.deque)
ids = itertools.count()
arrived: dict[str, asyncio.Event] = collections.defaultdict(asyncio.Event)


def message_id() -> str:
    return f"m-{next(ids)}"


def reply_of(body: str) -> tuple[str, str] | None:
    """The reply queue and the reply of a task envelope that names one, else None."""
    if '"reply_to"' not in body:
        return None
    envelope = decode_task(body.encode())
    if not envelope.reply_to:
        return None
    value = envelope.args[0] if envelope.args else None
    return envelope.reply_to, encode_reply(
        ReplyEnvelope(id=envelope.id, ok=True, value=value)
    ).decode()


def send(queue_url: str, body: str) -> str:
    reply = reply_of(body)
    if reply is not None:
        queues[reply[0]].append({"MessageId": message_id(), "ReceiptHandle": "r", "Body": reply[1]})
        arrived[reply[0]].set()
    return message_id()


async def receive(data: dict[str, Any]) -> dict[str, Any]:
    """Up to ``MaxNumberOfMessages``, long-polling up to ``WaitTimeSeconds`` as SQS does."""
    url, queue = data["QueueUrl"], queues[data["QueueUrl"]]
    if not queue and data.get("WaitTimeSeconds"):
        arrived[url].clear()
        try:
            async with asyncio.timeout(float(data["WaitTimeSeconds"])):
                await arrived[url].wait()
        except TimeoutError:
            pass
    count = min(len(queue), int(data.get("MaxNumberOfMessages", 1)))
    return {"Messages": [queue.popleft() for _ in range(count)]} if count else {}


async def sqs(request: web.Request, operation: str, data: dict[str, Any]) -> dict[str, Any]:
    if operation == "SendMessageBatch":
        sent = [
            {
                "Id": e["Id"],
                "MessageId": send(data["QueueUrl"], e["MessageBody"]),
                "MD5OfMessageBody": "x",
            }
            for e in data["Entries"]
        ]
        return {"Successful": sent, "Failed": []}
    if operation == "SendMessage":
        return {"MessageId": send(data["QueueUrl"], data["MessageBody"]), "MD5OfMessageBody": "x"}
    if operation == "ReceiveMessage":
        return await receive(data)
    if operation == "DeleteMessageBatch":
        return {"Successful": [{"Id": e["Id"]} for e in data["Entries"]], "Failed": []}
    if operation == "CreateQueue":
        return {"QueueUrl": f"http://{request.host}/{ACCOUNT}/{data['QueueName']}"}
    return {}  # DeleteQueue and the rest: done


async def handle(request: web.Request) -> web.Response:
    body = await request.read()
    target = request.headers.get("X-Amz-Target", "")
    if target.startswith("AmazonSQS."):
        answer = await sqs(request, target.removeprefix("AmazonSQS."), json.loads(body))
        return web.json_response(answer, content_type="application/x-amz-json-1.0")
    if request.path.endswith("/invocations"):
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind == "Event":
            return web.Response(status=202)
        if kind == "DryRun":
            return web.Response(status=204)
        return web.Response(body=body, content_type="application/json")
    return web.Response(status=404)


def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
