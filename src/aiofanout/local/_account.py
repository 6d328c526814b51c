"""The local account as AWS names it: region, account id, ARNs, and the SQS event record.

One home for these so the runtime, the event source mapping, the moto credentials and the
helpers in :mod:`aiofanout.testing` all describe the same (fake) account. Standard library only:
:mod:`aiofanout.testing` imports it without the ``local`` extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"
#: The services of the moto server a function reaches, by their ``AWS_ENDPOINT_URL_<ID>`` id,
#: and their names as AWS writes them (IAM too, which the control plane's roles use).
MOTO_SERVICES = {
    "SQS": "SQS",
    "S3": "S3",
    "DYNAMODB": "DynamoDB",
    "STS": "STS",
    "SNS": "SNS",
    "EVENTBRIDGE": "EventBridge",
    "LOGS": "CloudWatch Logs",
    "IAM": "IAM",
}


def function_arn(name: str) -> str:
    """The ARN of the local function ``name`` (unqualified: no version or alias)."""
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def function_name(name_or_arn: str) -> str:
    """The name in a ``FunctionName`` that may be a name or an ARN, as the AWS API accepts."""
    return name_or_arn.rpartition(":function:")[2] or name_or_arn


def queue_arn(name: str) -> str:
    """The ARN of the SQS queue ``name`` in the local account."""
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def topic_arn(name: str) -> str:
    """The ARN of the SNS topic ``name`` in the local account."""
    return f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"


def sqs_event_record(
    *,
    message_id: str,
    receipt_handle: str,
    body: str,
    source_arn: str,
    attributes: Mapping[str, object],
    message_attributes: Mapping[str, Mapping[str, Any]] | None = None,
    md5_of_body: str = "",
) -> dict[str, Any]:
    """One record of an ``aws:sqs`` event, as Lambda's event source hands it to a function.

    ``attributes`` are the message's system attributes (their values become strings, as on
    AWS); ``message_attributes`` are in the shape SQS ``ReceiveMessage`` returns them
    (``StringValue``, ``BinaryValue``, ``DataType``) and come out in the record's lower camel case.
    """
    return {
        "messageId": message_id,
        "receiptHandle": receipt_handle,
        "body": body,
        "attributes": {name: str(value) for name, value in attributes.items()},
        "messageAttributes": {
            name: _record_attribute(value) for name, value in (message_attributes or {}).items()
        },
        "md5OfBody": md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn,
        "awsRegion": REGION,
    }


def _record_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "stringValue": value.get("StringValue"),
        "binaryValue": value.get("BinaryValue"),
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": value.get("DataType", "String"),
    }
