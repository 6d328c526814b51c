"""A function a schedule fires: it sends the event it got to the queue ``FIRED_QUEUE_URL``.

boto3 only (the managed Python runtime ships it), so it runs isolated from serve's packages too.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3


def handler(event: Any, context: Any) -> None:
    boto3.client("sqs").send_message(
        QueueUrl=os.environ["FIRED_QUEUE_URL"],
        MessageBody=json.dumps({"event": event, "stage": os.environ.get("STAGE")}),
    )
