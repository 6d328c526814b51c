"""Envelopes that came through SNS: a Lambda's SNS event, and SNS notifications in SQS bodies.

An SNS topic delivers a message to each subscription in the subscription's own form:

- to a Lambda function, as an asynchronous invoke whose event holds one record,
  ``{"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "<the envelope>", ...}}]}``;
- to an SQS queue with raw message delivery, as the message itself: the SQS body is the
  envelope, and nothing here is needed;
- to an SQS queue without it (the default), as the SNS notification's JSON: the SQS body is
  ``{"Type": "Notification", "TopicArn": ..., "Message": "<the envelope>", ...}``.

The envelope inside is checked as any other (signature, age, task): the notification around it
is SNS's and vouches for nothing.
"""

from __future__ import annotations

import json
from typing import Any

from .._errors import InvalidEnvelope

__all__ = ["SNS_SOURCE", "is_sns_event", "sns_messages", "unwrapped_body"]

SNS_SOURCE = "aws:sns"


def is_sns_event(event: Any) -> bool:
    """Whether ``event`` is what Lambda hands a function subscribed to an SNS topic."""
    records = event.get("Records") if isinstance(event, dict) else None
    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, dict) and r.get("EventSource") == SNS_SOURCE for r in records)
    )


def sns_messages(event: dict[str, Any]) -> list[str]:
    """The messages of an SNS event's records, or :class:`InvalidEnvelope` before any runs."""
    messages = []
    for position, record in enumerate(event["Records"]):
        sns = record.get("Sns")
        message = sns.get("Message") if isinstance(sns, dict) else None
        if not isinstance(message, str):
            raise InvalidEnvelope(
                f"SNS record {position} has no Sns.Message string: not an SNS event from AWS"
            )
        messages.append(message)
    return messages


def unwrapped_body(body: str) -> str:
    """An SQS body, or the message of the SNS notification it is (a non-raw subscription).

    Envelopes are compact JSON (``{"args":...``); SNS writes its notifications indented
    (a brace, then a new line), so only a body with white space after its brace is parsed here,
    and the parse is the one check: a notification names its topic and holds its message.
    """
    if len(body) < 2 or body[0] != "{" or not body[1].isspace():
        return body
    try:
        notification = json.loads(body)
    except ValueError:
        return body  # the runner says what is wrong with it
    if (
        isinstance(notification, dict)
        and notification.get("Type") == "Notification"
        and isinstance(notification.get("TopicArn"), str)
        and isinstance(notification.get("Message"), str)
    ):
        return str(notification["Message"])
    return body
