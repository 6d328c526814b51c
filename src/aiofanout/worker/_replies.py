"""Replies to ``reply_to``: an envelope that names a queue gets its reply sent there.

The SQS client is made once per loop and kept on the :class:`LoopRunner`, so warm invocations
reuse its connections; the runner closes it with the loop.
"""

from __future__ import annotations

import logging
from typing import Any

from .._errors import UsageError
from .._wire import encode_reply
from ._runner import LoopRunner
from ._task import TaskResult

log = logging.getLogger("aiofanout.worker")


async def send_reply_if_asked(runner: LoopRunner, result: TaskResult) -> None:
    """Send the reply envelope to the envelope's ``reply_to`` queue, if it named one."""
    envelope = result.envelope
    if envelope is None or not envelope.reply_to:
        return
    client = await _reply_client(runner)
    body = encode_reply(result.reply).decode()
    try:
        await client.send_message(QueueUrl=envelope.reply_to, MessageBody=body)
    except Exception:
        log.exception("could not send the reply of task id=%s", envelope.id)
        raise


async def _reply_client(runner: LoopRunner) -> Any:
    if runner.reply_client is None:
        try:
            import aioboto3
        except ImportError as exc:  # pragma: no cover - depends on the extras installed
            raise UsageError("replies to SQS need: pip install 'aiofanout[aws]'") from exc
        session = aioboto3.Session()
        runner.reply_client = await runner.resources.enter_async_context(session.client("sqs"))
    return runner.reply_client
