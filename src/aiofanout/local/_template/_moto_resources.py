"""``AWS::SQS::Queue``, ``AWS::S3::Bucket`` and ``AWS::DynamoDB::Table`` on the moto server.

Each is created through the stack's own aioboto3 clients, with CloudFormation's property
shapes turned into the API's: a queue's properties become its string attributes (a
``RedrivePolicy`` mapping becomes its JSON), a table's ``TimeToLiveSpecification`` is an
``UpdateTimeToLive`` after the table exists. ``Ref`` and ``Fn::GetAtt`` give what CloudFormation
documents: a queue's URL (``Arn``, ``QueueName``, ``QueueUrl``), a bucket's name (``Arn``,
``DomainName``, ``RegionalDomainName``), a table's name (``Arn``, ``StreamArn``).
"""

from __future__ import annotations

import json
from typing import Any

from .._account import REGION
from ._intrinsics import Created, text
from ._kinds import Context, Kind, Resource, integer, mapping

QUEUE_ATTRIBUTES = {  # property: (lowest, highest), or None for a boolean or a policy
    "ContentBasedDeduplication": None,
    "DeduplicationScope": None,
    "DelaySeconds": (0, 900),
    "FifoQueue": None,
    "FifoThroughputLimit": None,
    "MaximumMessageSize": (1024, 1048576),
    "MessageRetentionPeriod": (60, 1209600),
    "ReceiveMessageWaitTimeSeconds": (0, 20),
    "RedriveAllowPolicy": None,
    "RedrivePolicy": None,
    "VisibilityTimeout": (0, 43200),
}
NOT_ENCRYPTED = "not enforced locally: moto keeps messages unencrypted"
TAGS = "not applied locally"


async def create_queue(ctx: Context, resource: Resource) -> Created:
    properties = ctx.properties(resource)
    where = f"{resource.where}.Properties"
    fifo = text(properties.get("FifoQueue", False), f"{where}.FifoQueue") == "true"
    name = properties.get("QueueName") or ctx.physical_name(
        resource, limit=80, suffix=".fifo" if fifo else ""
    )
    attributes = {
        key: _queue_attribute(properties, key, where)
        for key in QUEUE_ATTRIBUTES
        if key in properties
    }
    sqs = await ctx.client("sqs")
    url = (await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]
    got = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    arn = got["Attributes"]["QueueArn"]
    ctx.created("queue", resource, url)
    return Created(resource.type, url, {"Arn": arn, "QueueName": name, "QueueUrl": url})


def _queue_attribute(properties: dict[str, Any], key: str, where: str) -> str:
    value, bounds = properties[key], QUEUE_ATTRIBUTES[key]
    if key in ("RedrivePolicy", "RedriveAllowPolicy"):
        return value if isinstance(value, str) else json.dumps(mapping(value, f"{where}.{key}"))
    if bounds is not None:
        return str(integer(properties, key, where, bounds))
    return text(value, f"{where}.{key}")


QUEUE = Kind(
    "AWS::SQS::Queue",
    "queue",
    create_queue,
    frozenset({"QueueName", *QUEUE_ATTRIBUTES}),
    {
        "KmsMasterKeyId": NOT_ENCRYPTED,
        "KmsDataKeyReusePeriodSeconds": NOT_ENCRYPTED,
        "SqsManagedSseEnabled": NOT_ENCRYPTED,
        "Tags": TAGS,
    },
)


async def create_bucket(ctx: Context, resource: Resource) -> Created:
    properties = ctx.properties(resource)
    name = properties.get("BucketName") or ctx.physical_name(resource, limit=63, lower=True)
    s3 = await ctx.client("s3")
    await s3.create_bucket(Bucket=name)  # us-east-1: no LocationConstraint
    versioning = properties.get("VersioningConfiguration")
    if versioning is not None:
        status = mapping(versioning, f"{resource.where}.VersioningConfiguration").get("Status")
        await s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": text(status, resource.where)}
        )
    ctx.created("bucket", resource, name)
    return Created(
        resource.type,
        name,
        {
            "Arn": f"arn:aws:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com",
        },
    )


BUCKET = Kind(
    "AWS::S3::Bucket",
    "bucket",
    create_bucket,
    frozenset({"BucketName", "VersioningConfiguration"}),
    {
        "LifecycleConfiguration": "not enforced locally: moto expires no object",
        "BucketEncryption": NOT_ENCRYPTED.replace("messages", "objects"),
        "PublicAccessBlockConfiguration": "not enforced locally (no public access anyway)",
        "OwnershipControls": "not enforced locally",
        "Tags": TAGS,
    },
)


async def create_table(ctx: Context, resource: Resource) -> Created:
    properties = ctx.properties(resource)
    name = properties.get("TableName") or ctx.physical_name(resource, limit=255)
    request = _table_request(properties, name)
    dynamodb = await ctx.client("dynamodb")
    described = (await dynamodb.create_table(**request))["TableDescription"]
    ttl = properties.get("TimeToLiveSpecification")
    if ttl is not None:
        spec = mapping(ttl, f"{resource.where}.Properties.TimeToLiveSpecification")
        await dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={
                "Enabled": text(spec.get("Enabled", True), resource.where) == "true",
                "AttributeName": text(spec.get("AttributeName", ""), resource.where),
            },
        )
    ctx.created("table", resource, name)
    attributes = {"Arn": described["TableArn"]}
    if "LatestStreamArn" in described:
        attributes["StreamArn"] = described["LatestStreamArn"]
    return Created(resource.type, name, attributes)


def _table_request(properties: dict[str, Any], name: str) -> dict[str, Any]:
    """CreateTable's arguments: CloudFormation's shapes are the API's, numbers as numbers."""
    request: dict[str, Any] = {"TableName": name}
    for key in ("KeySchema", "AttributeDefinitions", "BillingMode"):
        if key in properties:
            request[key] = properties[key]
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if key in properties:
            request[key] = [_numbers(index) for index in properties[key]]
    if "ProvisionedThroughput" in properties:
        request["ProvisionedThroughput"] = _numbers(properties["ProvisionedThroughput"])
    stream = properties.get("StreamSpecification")
    if isinstance(stream, dict) and "StreamViewType" in stream:
        request["StreamSpecification"] = {"StreamEnabled": True, **stream}
    return request


def _numbers(value: Any) -> Any:
    """Capacity units are numbers to the API; a template may give them as strings."""
    if isinstance(value, dict):
        return {k: int(v) if k.endswith("CapacityUnits") else _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


TABLE = Kind(
    "AWS::DynamoDB::Table",
    "table",
    create_table,
    frozenset(
        {
            "TableName",
            "KeySchema",
            "AttributeDefinitions",
            "BillingMode",
            "ProvisionedThroughput",
            "GlobalSecondaryIndexes",
            "LocalSecondaryIndexes",
            "StreamSpecification",
            "TimeToLiveSpecification",
        }
    ),
    {
        "PointInTimeRecoverySpecification": "not enforced locally",
        "SSESpecification": NOT_ENCRYPTED.replace("messages", "items"),
        "DeletionProtectionEnabled": "not enforced locally",
        "ContributorInsightsSpecification": "not enforced locally",
        "TableClass": "not enforced locally",
        "Tags": TAGS,
    },
)
