"""``AWS::SNS::Topic`` and ``AWS::SNS::Subscription`` on the moto server.

A topic is ``CreateTopic`` (``Ref``: its ARN; ``Fn::GetAtt``: ``TopicArn``, ``TopicName``), its
inline ``Subscription`` list subscribed with it; a subscription is ``Subscribe`` (``Ref``: its
ARN) for the two protocols the local stack delivers: ``sqs`` (moto sends to the queue, SNS's
notification JSON unless ``RawMessageDelivery``) and ``lambda`` (the moto server invokes the
function on the local runtime, in AWS's SNS event format). SAM's ``SNS`` event of a function
becomes such a subscription (``_sam.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..._errors import UsageError
from ._intrinsics import Created, text
from ._kinds import Context, Kind, Resource, boolean, mapping

PROTOCOLS = ("sqs", "lambda")
NOT_ENFORCED = "not enforced locally"


async def create_topic(ctx: Context, resource: Resource) -> Created:
    properties = ctx.properties(resource)
    where = f"{resource.where}.Properties"
    fifo = boolean(properties.get("FifoTopic", False), f"{where}.FifoTopic")
    name = properties.get("TopicName") or ctx.physical_name(
        resource, limit=256, suffix=".fifo" if fifo else ""
    )
    attributes = {"FifoTopic": "true"} if fifo else {}
    dedup = properties.get("ContentBasedDeduplication", False)
    if boolean(dedup, f"{where}.ContentBasedDeduplication"):  # moto reads "false" as on too
        attributes["ContentBasedDeduplication"] = "true"
    sns = await ctx.client("sns")
    arn = str((await sns.create_topic(Name=text(name, where), Attributes=attributes))["TopicArn"])
    for position, inline in enumerate(properties.get("Subscription") or []):
        await _subscribe(ctx, arn, mapping(inline, f"{where}.Subscription[{position}]"), where)
    ctx.created("topic", resource, arn)
    return Created(resource.type, arn, {"TopicArn": arn, "TopicName": name})


async def create_subscription(ctx: Context, resource: Resource) -> Created:
    properties = ctx.properties(resource)
    where = f"{resource.where}.Properties"
    topic = text(properties.get("TopicArn", ""), f"{where}.TopicArn")
    arn = await _subscribe(ctx, topic, properties, where)
    ctx.created("subscription", resource, f"{topic} -> {properties.get('Endpoint')}")
    return Created(resource.type, arn)


async def _subscribe(ctx: Context, topic: str, spec: Mapping[str, Any], where: str) -> str:
    protocol = text(spec.get("Protocol", ""), f"{where}.Protocol")
    if protocol not in PROTOCOLS:
        raise UsageError(
            f"{where}.Protocol: {protocol!r} is not delivered locally (only {', '.join(PROTOCOLS)})"
        )
    attributes = {}
    if "RawMessageDelivery" in spec:
        raw = boolean(spec["RawMessageDelivery"], f"{where}.RawMessageDelivery")
        if raw:  # moto reads any value as "on": leave "false" out
            attributes["RawMessageDelivery"] = "true"
    for key in ("FilterPolicy", "FilterPolicyScope"):
        if key in spec:
            value = spec[key]
            attributes[key] = value if isinstance(value, str) else json.dumps(value)
    sns = await ctx.client("sns")
    answer = await sns.subscribe(
        TopicArn=topic,
        Protocol=protocol,
        Endpoint=text(spec.get("Endpoint", ""), f"{where}.Endpoint"),
        Attributes=attributes,
        ReturnSubscriptionArn=True,
    )
    return str(answer["SubscriptionArn"])


TOPIC = Kind(
    "AWS::SNS::Topic",
    "topic",
    create_topic,
    frozenset({"TopicName", "FifoTopic", "ContentBasedDeduplication", "Subscription"}),
    {
        "DisplayName": "not shown locally (no SMS or e-mail delivery)",
        "KmsMasterKeyId": "not enforced locally: moto keeps messages unencrypted",
        "ArchivePolicy": NOT_ENFORCED,
        "DeliveryStatusLogging": NOT_ENFORCED,
        "TracingConfig": NOT_ENFORCED,
        "Tags": "not applied locally",
    },
)

SUBSCRIPTION = Kind(
    "AWS::SNS::Subscription",
    "subscription",
    create_subscription,
    frozenset(
        {"TopicArn", "Protocol", "Endpoint", "RawMessageDelivery", "FilterPolicy"}
        | {"FilterPolicyScope"}
    ),
    {
        "Region": "one region locally",
        "DeliveryPolicy": NOT_ENFORCED,
        "RedrivePolicy": f"{NOT_ENFORCED}: a delivery that fails is not dead-lettered",
        "SubscriptionRoleArn": NOT_ENFORCED,
    },
)
