"""Shared helpers of the control-plane tests: zipped handlers and a boto3 client on the stack."""

from __future__ import annotations

import asyncio
import io
import uuid
import zipfile
from collections.abc import Callable
from typing import Any

from aiofanout.testing import eventually

HANDLER = """
import os, time

VERSION = "{version}"

def handler(event, context):
    print(f"hello from {{context.function_name}} version {{VERSION}}")
    if event.get("fail"):
        raise ValueError("boom")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {{"version": VERSION, "greeting": os.environ.get("GREETING")}}
"""


def zipped(version: str = "1") -> bytes:
    """A zip holding ``app.py`` whose ``handler`` answers its ``version``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HANDLER.format(version=version))
    return buffer.getvalue()


def unique(prefix: str = "fn") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def client(service: str, endpoint_url: str, **options: Any) -> Any:
    """A boto3 client; ``options`` go to its ``Config`` (``parameter_validation=False``: botocore
    sends what it would refuse, so the server's answer is what is tested)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"total_max_attempts": 1}, read_timeout=60, **options)
    return boto3.client(service, endpoint_url=endpoint_url, region_name="us-east-1", config=config)


async def call(method: Callable[..., Any], **kwargs: Any) -> Any:
    """A sync boto3 call, run in a thread (the stack serves on this loop)."""
    return await asyncio.to_thread(method, **kwargs)


async def receive(sqs: Any, url: str, count: int, *, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Receive (and delete) ``count`` messages of a queue, long polling; fail after ``timeout``."""
    messages: list[dict[str, Any]] = []

    def all_received() -> bool:  # boto3 blocks: run in a thread (the stack serves on this loop)
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in got.get("Messages", []):
            messages.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages) >= count

    await eventually(lambda: asyncio.to_thread(all_received), timeout=timeout, interval=0)
    return messages
