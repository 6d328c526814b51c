"""SNS deliveries as AWS makes them: Lambda subscriptions invoked, FIFO topics deduplicated.

moto's SNS hands a message for a ``lambda`` subscription to moto's own Lambda, which runs no
code without Docker (``moto/sns/models.py``, ``Subscription.publish``; ``LambdaBackend.
send_sns_message`` then fails inside the publish, or echoes a canned event with made-up ids).
This module, run in the moto server's process, sends it to the local runtime instead, as AWS
does: an asynchronous invoke (``X-Amz-Invocation-Type: Event``, so Lambda's retries and the
function's on-failure destination apply) with one record per invocation::

    {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
                  "EventSubscriptionArn": "<the subscription's ARN>",
                  "Sns": {"Type": "Notification", "MessageId", "TopicArn", "Subject",
                          "Message", "Timestamp", "SignatureVersion", "Signature",
                          "SigningCertUrl", "UnsubscribeUrl", "MessageAttributes"}}]}

The notification is moto's own (``get_post_data``, what an SQS subscription receives too),
with AWS's Lambda spellings of two keys (``SigningCertUrl``, ``UnsubscribeUrl``) and
``Subject`` ``null`` when the publish gave none. The subscription's filter policy applies as
moto applies it. Deliveries go out in order from one thread, so a publish never waits for the
runtime; one that fails is retried three times (AWS retries a Lambda delivery too), then
dropped, as SNS drops it without a dead-letter queue, with a line on the server's standard
error (which :class:`MotoServer` does not keep: a delivery fails only when the runtime is gone
or the function does not exist).

The runtime's Invoke API endpoint comes in :data:`LAMBDA_ENDPOINT_VARIABLE`; without it (a moto
server that no local runtime stands beside) moto's own Lambda delivery is left alone.

A FIFO topic with ``ContentBasedDeduplication`` takes a publish without a deduplication id; SNS
then makes one, the SHA-256 of the message, and hands it to its FIFO queues. moto passes none
on, so a FIFO queue that does not deduplicate by content refuses the message, and moto's
``PublishBatch`` drops that entry from its answer (neither ``Successful`` nor ``Failed``). The
id is made here as SNS makes it. moto also keeps a topic's attributes as the strings they came
as, so ``"false"`` counts as on: a topic that should not deduplicate by content leaves the
attribute out.

Standard library only; moto is imported when :func:`install` runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import sys
import threading
import time
import urllib.parse
import urllib.request
from typing import Any

from ._moto_server import LAMBDA_ENDPOINT_VARIABLE

ATTEMPTS = 4
_MARK = "__aiofanout_sns_deliveries__"
_URL_KEYS = {"SigningCertURL": "SigningCertUrl", "UnsubscribeURL": "UnsubscribeUrl"}


def sns_lambda_event(subscription_arn: str, notification: dict[str, Any]) -> dict[str, Any]:
    """The event Lambda receives for one SNS notification (the SQS body's JSON, ``raw=False``)."""
    sns = {_URL_KEYS.get(key, key): value for key, value in notification.items()}
    sns.setdefault("Subject", None)
    sns.setdefault("MessageAttributes", {})
    record = {
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": subscription_arn,
        "Sns": sns,
    }
    return {"Records": [record]}


class _Deliveries:
    """One thread that posts the queued invokes in order, with a few attempts each."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.pending: queue.Queue[tuple[str, str | None, bytes]] = queue.Queue()
        threading.Thread(target=self._run, name="sns-to-lambda", daemon=True).start()

    def put(self, function: str, qualifier: str | None, event: dict[str, Any]) -> None:
        self.pending.put((function, qualifier, json.dumps(event).encode()))

    def _run(self) -> None:
        while True:
            function, qualifier, body = self.pending.get()
            self._deliver(function, qualifier, body)

    def _deliver(self, function: str, qualifier: str | None, body: bytes) -> None:
        path = f"/2015-03-31/functions/{urllib.parse.quote(function, safe='')}/invocations"
        query = f"?Qualifier={urllib.parse.quote(qualifier)}" if qualifier else ""
        request = urllib.request.Request(
            self.endpoint + path + query,
            data=body,
            method="POST",
            headers={"X-Amz-Invocation-Type": "Event", "Content-Type": "application/json"},
        )
        for attempt in range(ATTEMPTS):
            try:
                with urllib.request.urlopen(request, timeout=10):
                    return
            except OSError as exc:  # HTTPError (a 4xx/5xx answer) is an OSError too
                last = exc
            time.sleep(0.2 * 2**attempt)
        print(
            f"aiofanout: SNS delivery to Lambda function {function!r} failed {ATTEMPTS} times "
            f"({last}); the message is dropped, as AWS drops it without a dead-letter queue",
            file=sys.stderr,
        )


def install(endpoint: str | None = None) -> None:
    """Deduplicate FIFO topics by content; send ``lambda`` deliveries to the runtime.

    ``endpoint``: the runtime's Invoke API (default: :data:`LAMBDA_ENDPOINT_VARIABLE`).
    """
    _deduplicate_by_content()
    endpoint = endpoint or os.environ.get(LAMBDA_ENDPOINT_VARIABLE)
    if endpoint:
        _deliver_to_the_runtime(endpoint)


def _deduplicate_by_content() -> None:
    from moto.sns.models import Topic

    publish = Topic.publish
    if getattr(publish, _MARK, False):
        return

    def publish_deduplicated(self: Any, message: str, **options: Any) -> str:
        # (moto's SNSBackend.publish passes everything but the message by keyword)
        if self.fifo_topic and self.content_based_deduplication:
            options["deduplication_id"] = (
                options.get("deduplication_id") or hashlib.sha256(message.encode()).hexdigest()
            )
        result: str = publish(self, message, **options)
        return result

    setattr(publish_deduplicated, _MARK, True)
    Topic.publish = publish_deduplicated  # type: ignore[method-assign, assignment]


def _deliver_to_the_runtime(endpoint: str) -> None:
    from moto.sns.models import Subscription

    publish = Subscription.publish
    if getattr(publish, _MARK, False):
        return
    deliveries = _Deliveries(endpoint)

    def publish_to_the_runtime(
        self: Any,
        message: str,
        message_id: str,
        subject: str | None = None,
        message_attributes: dict[str, Any] | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        message_structure: str | None = None,
    ) -> None:
        if self.protocol != "lambda":
            return publish(
                self, message, message_id, subject, message_attributes, group_id,
                deduplication_id, message_structure,
            )  # fmt: skip
        matcher = self._filter_policy_matcher
        if matcher is not None and not matcher.matches(message_attributes, message):
            return None
        if message_structure == "json":
            message = self._parse_message_structure(message, self.protocol)
        notification = self.get_post_data(
            message, message_id, subject, message_attributes=message_attributes
        )
        function, qualifier = _function_of(self.endpoint)
        deliveries.put(function, qualifier, sns_lambda_event(self.arn, notification))
        return None

    setattr(publish_to_the_runtime, _MARK, True)
    Subscription.publish = publish_to_the_runtime  # type: ignore[method-assign]


def _function_of(arn: str) -> tuple[str, str | None]:
    """The function name and qualifier of a function ARN (or a bare name)."""
    parts = arn.split(":")
    if len(parts) >= 7 and parts[5] == "function":
        return parts[6], parts[7] if len(parts) > 7 else None
    return arn, None
