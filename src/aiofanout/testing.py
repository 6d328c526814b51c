"""Helpers for testing code that uses aiofanout: fake Lambda contexts, SQS events, servers.

Example::

    from aiofanout.testing import LambdaContext, sqs_event

    def test_worker():
        event = sqs_event([resize.envelope("a.png")])
        assert app.lambda_handler(event, LambdaContext(remaining_ms=30_000)) == {
            "batchItemFailures": []
        }
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["LambdaContext", "sqs_event", "sqs_record"]

REGION = "us-east-1"
ACCOUNT = "123456789012"


class LambdaContext:
    """A stand-in for the context object Lambda passes a handler, with a deadline that runs.

    Pass ``remaining_ms`` for a deadline that counts down from now in real time, or ``clock``,
    a function returning the remaining milliseconds, to script it.
    """

    def __init__(
        self,
        *,
        remaining_ms: int = 900_000,
        clock: Callable[[], int] | None = None,
        function_name: str = "worker",
        memory_limit_in_mb: str = "128",
    ) -> None:
        self._deadline = time.monotonic() + remaining_ms / 1000
        self._clock = clock
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb  # a string, as in awslambdaric
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "test"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation's deadline."""
        if self._clock is not None:
            return self._clock()
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def sqs_record(
    body: str | bytes,
    *,
    queue: str = "work",
    fifo: bool = False,
    receive_count: int = 1,
    group_id: str = "g1",
    message_id: str | None = None,
) -> dict[str, Any]:
    """One record as Lambda's SQS event source delivers it."""
    text = body.decode() if isinstance(body, bytes) else body
    name = f"{queue}.fifo" if fifo and not queue.endswith(".fifo") else queue
    attributes: dict[str, str] = {
        "ApproximateReceiveCount": str(receive_count),
        "SentTimestamp": str(int(time.time() * 1000)),
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
    }
    if fifo:
        attributes |= {
            "MessageGroupId": group_id,
            "MessageDeduplicationId": hashlib.sha256(text.encode()).hexdigest(),
            "SequenceNumber": str(time.time_ns()),
        }
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "AQEB" + uuid.uuid4().hex,
        "body": text,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(text.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
        "awsRegion": REGION,
    }


def sqs_event(
    bodies: Sequence[str | bytes], *, queue: str = "work", fifo: bool = False
) -> dict[str, Any]:
    """An SQS event source batch of ``bodies``, as Lambda hands it to a handler."""
    return {"Records": [sqs_record(b, queue=queue, fifo=fifo) for b in bodies]}
