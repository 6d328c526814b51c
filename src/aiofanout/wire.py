"""The wire format, for producers and consumers that are not aiofanout itself.

A task envelope is one JSON object naming a registered task and its arguments; a reply envelope
answers it. A worker (``aiofanout.worker.App``) decodes, verifies and runs envelopes; targets encode
them. Use these functions to send tasks from another service, to read replies yourself, or to
build test messages.

Example::

    from aiofanout.wire import decode_reply, encode_task

    body = encode_task("resize", ["a.png"], {"width": 64}, secret=secret)
    await sqs.send_message(QueueUrl=queue_url, MessageBody=body.decode())
"""

from __future__ import annotations

from ._public import show_public_path
from ._wire import (
    ClaimRef,
    ErrorInfo,
    ReplyEnvelope,
    TaskEnvelope,
    decode_reply,
    decode_task,
    encode_reply,
    encode_task,
    secret_from_env,
)

__all__ = [
    "ClaimRef",
    "ErrorInfo",
    "ReplyEnvelope",
    "TaskEnvelope",
    "decode_reply",
    "decode_task",
    "encode_reply",
    "encode_task",
    "secret_from_env",
]

show_public_path(__name__, __all__, globals())
