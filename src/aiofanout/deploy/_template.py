"""The SAM template of a stack, right by construction.

What the README used to ask users to get right by hand is written here once: every SQS mapping
reports batch item failures (the worker answers a batch with ``batchItemFailures``; without it
one failed record sends the whole batch back) and caps its concurrency where asked; a consumed
queue's visibility timeout is at least 6x its consumers' timeouts (a message is not handed to a
second consumer while the first may still run it) and it has a redrive policy to a dead-letter
queue (a poison message stops coming back); each function has its own role with the statements
of :mod:`._policies`, and its own log group (so the role names it, and logs expire); an
orchestrator that continues itself has ``RecursiveLoop: Allow`` (Lambda stops a recursive chain
after 16 calls); the claim bucket expires what a crash left under its prefix; the idempotency
table has ``DynamoDBStore``'s key schema and TTL; the journal bucket outlives the stack; a
queue subscribed to a topic has a queue policy letting only that stack's topics send to it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .. import __version__
from .._errors import UsageError
from ..worker._dynamodb import TABLE_SCHEMA, TTL_ATTRIBUTE
from ._cfn_functions import arn, get_att, logical_id, ref
from ._description import Stack
from ._model import Function, Queue, Topic
from ._policies import Ids, statements
from ._refs import Reference

__all__ = ["sam_template"]

TRANSFORM = "AWS::Serverless-2016-10-31"
PRIVATE_BUCKET = {
    "PublicAccessBlockConfiguration": {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    },
    "BucketEncryption": {
        "ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
        ]
    },
}


def sam_template(stack: Stack, code_uris: dict[str, str] | None = None) -> dict[str, Any]:
    """The stack's SAM template as a dict; ``code_uris`` maps functions to their zips.

    Example::

        template = sam_template(Stack.load("stack.toml"))
        template["Resources"]["WorkerFunction"]["Properties"]["Timeout"]  # 30
    """
    ids = _ids(stack)
    uris = code_uris or {f.name: f"{f.name}.zip" for f in stack.functions}
    resources: dict[str, Any] = {}
    for queue in stack.all_queues():
        resources[ids["queue", queue.name]] = _queue(stack, queue, ids)
    for topic in stack.topics:
        resources[ids["topic", topic.name]] = _topic(topic)
    resources.update(_queue_subscriptions(stack, ids))
    resources.update(_shared_resources(stack))
    for function in stack.functions:
        resources.update(_function(stack, function, ids, uris[function.name]))
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": TRANSFORM,
        "Description": f"{stack.name}: built by aiofanout {__version__} (aiofanout build)",
        "Resources": resources,
        "Outputs": _outputs(stack, ids),
    }


def _ids(stack: Stack) -> Ids:
    taken: dict[str, str] = {}
    ids: Ids = {}
    for queue in stack.all_queues():
        ids["queue", queue.name] = logical_id(queue.name, "Queue", taken)
    for topic in stack.topics:
        ids["topic", topic.name] = logical_id(topic.name, "Topic", taken)
    for function in stack.functions:
        base = logical_id(function.name, "Function", taken).removesuffix("Function")
        for kind in ("Role", "LogGroup"):
            logical_id(function.name, kind, taken)
        ids["function", function.name] = f"{base}Function"
        ids["role", function.name] = f"{base}Role"
        ids["log", function.name] = f"{base}LogGroup"
    return ids


# -- queues, buckets, the table -----------------------------------------------------------------


def _queue(stack: Stack, queue: Queue, ids: Ids) -> dict[str, Any]:
    properties: dict[str, Any] = {"QueueName": queue.name}
    if queue.fifo:
        properties["FifoQueue"] = True
    visibility = stack.visibility_timeout(queue)
    if visibility is not None:
        properties["VisibilityTimeout"] = visibility
    if queue.retention is not None:
        properties["MessageRetentionPeriod"] = queue.retention
    dead_letter = stack.dead_letter(queue)
    if dead_letter is not None:
        properties["RedrivePolicy"] = {
            "deadLetterTargetArn": get_att(ids["queue", dead_letter], "Arn"),
            "maxReceiveCount": queue.max_receive_count,
        }
    properties.update({key: _number(value) for key, value in queue.attributes.items()})
    properties.setdefault("SqsManagedSseEnabled", True)
    return {"Type": "AWS::SQS::Queue", "Properties": properties}


def _topic(topic: Topic) -> dict[str, Any]:
    properties: dict[str, Any] = {"TopicName": topic.name}
    if topic.fifo:
        properties["FifoTopic"] = True
        properties["ContentBasedDeduplication"] = topic.content_based_deduplication
    return {"Type": "AWS::SNS::Topic", "Properties": properties}


def _queue_subscriptions(stack: Stack, ids: Ids) -> dict[str, Any]:
    """Each queue's subscriptions, and the queue policy that lets its topics send to it.

    A function's subscription is its SAM ``SNS`` event (SAM adds the invoke permission).
    """
    resources: dict[str, Any] = {}
    for subscription in stack.subscriptions:
        if subscription.queue is None:
            continue
        topic, queue = ids["topic", subscription.topic], ids["queue", subscription.queue]
        properties: dict[str, Any] = {
            "Protocol": "sqs",
            "TopicArn": ref(topic),
            "Endpoint": get_att(queue, "Arn"),
        }
        if subscription.raw:
            properties["RawMessageDelivery"] = True
        properties.update(subscription.filter_properties())
        name = f"{topic.removesuffix('Topic')}{queue.removesuffix('Queue')}Subscription"
        resources[name] = {"Type": "AWS::SNS::Subscription", "Properties": properties}
    for queue_name, topics in stack.subscribed_queues().items():
        queue = ids["queue", queue_name]
        allow = {
            "Sid": "TopicsSendHere",
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": get_att(queue, "Arn"),
            # only this stack's topics: the queue is no open inbox for every topic of the region
            "Condition": {"ArnEquals": {"aws:SourceArn": [ref(ids["topic", t]) for t in topics]}},
        }
        resources[f"{queue}Policy"] = {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [ref(queue)],
                "PolicyDocument": {"Version": "2012-10-17", "Statement": [allow]},
            },
        }
    return resources


def _number(value: str) -> Any:
    if value in ("true", "false"):
        return value == "true"
    return int(value) if value.isdigit() else value


def _shared_resources(stack: Stack) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if stack.claim_check is not None:
        claims = stack.claim_check
        rule = {
            "Id": "ExpireClaims",
            "Status": "Enabled",
            "Prefix": claims.prefix,  # only what the claim check wrote expires
            "ExpirationInDays": claims.expire_days,
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
        properties = {**_named("BucketName", claims.bucket), **PRIVATE_BUCKET}
        properties["LifecycleConfiguration"] = {"Rules": [rule]}
        resources["ClaimCheckBucket"] = {"Type": "AWS::S3::Bucket", "Properties": properties}
    if stack.journal is not None:
        properties = {**_named("BucketName", stack.journal.bucket), **PRIVATE_BUCKET}
        resources["JournalBucket"] = {
            "Type": "AWS::S3::Bucket",
            "DeletionPolicy": "Retain",  # a run's journal outlives the stack that ran it
            "UpdateReplacePolicy": "Retain",
            "Properties": properties,
        }
    if stack.idempotency is not None:
        resources["IdempotencyTable"] = _table(stack.idempotency.table)
    return resources


def _named(key: str, name: str | None) -> dict[str, Any]:
    return {key: name} if name else {}


def _table(name: str) -> dict[str, Any]:
    # DynamoDBStore's own schema (one string key "pk"), TTL on its "ttl" attribute; the
    # records are a day's replies: nothing to keep when the stack goes.
    return {
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": "Delete",
        "UpdateReplacePolicy": "Delete",
        "Properties": {
            "TableName": name,
            **TABLE_SCHEMA,
            "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
        },
    }


# -- functions ------------------------------------------------------------------------------------


def _function(stack: Stack, function: Function, ids: Ids, code_uri: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "FunctionName": function.name,
        "CodeUri": code_uri,
        "Handler": function.handler.replace(":", "."),
        "Runtime": f"python{stack.python}",
        "Architectures": [function.architecture],
        "MemorySize": function.memory,
        "Timeout": _whole_seconds(function),
        "Role": get_att(ids["role", function.name], "Arn"),
    }
    if function.reserved_concurrency is not None:
        properties["ReservedConcurrentExecutions"] = function.reserved_concurrency
    if function.environment:
        variables = {k: _environment_value(stack, v, ids) for k, v in function.environment.items()}
        properties["Environment"] = {"Variables": variables}
    if function.continuation:
        properties["RecursiveLoop"] = "Allow"  # it invokes itself on purpose: orchestrate()
    if function.event_invoke_config is not None:
        properties["EventInvokeConfig"] = _event_invoke(function, ids)
    events = _events(stack, function, ids)
    if events:
        properties["Events"] = events
    return {
        ids["function", function.name]: {
            "Type": "AWS::Serverless::Function",
            "Properties": properties,
        },
        ids["role", function.name]: _role(stack, function, ids),
        ids["log", function.name]: {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": f"/aws/lambda/{function.name}",
                "RetentionInDays": stack.log_retention_days,
            },
        },
    }


def _whole_seconds(function: Function) -> int:
    if function.timeout != math.floor(function.timeout):
        raise UsageError(
            f"function {function.name!r}: timeout {function.timeout:g} s; Lambda takes whole "
            "seconds (1-900)"
        )
    return int(function.timeout)


def _role(stack: Stack, function: Function, ids: Ids) -> dict[str, Any]:
    trust = {
        "Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    document = {"Version": "2012-10-17", "Statement": statements(stack, function, ids)}
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [trust]},
            "Policies": [
                {"PolicyName": f"{function.name}-least-privilege", "PolicyDocument": document}
            ],
        },
    }


def _event_invoke(function: Function, ids: Ids) -> dict[str, Any]:
    invoke = function.event_invoke_config
    assert invoke is not None
    config: dict[str, Any] = {}
    if invoke.maximum_retry_attempts is not None:
        config["MaximumRetryAttempts"] = invoke.maximum_retry_attempts
    if invoke.maximum_event_age is not None:
        config["MaximumEventAgeInSeconds"] = invoke.maximum_event_age
    destinations = {}
    for key, name in (("OnSuccess", invoke.on_success), ("OnFailure", invoke.on_failure)):
        if name:
            target = name if name.startswith("arn:") else get_att(ids["queue", name], "Arn")
            destinations[key] = {"Type": "SQS", "Destination": target}
    if destinations:
        config["DestinationConfig"] = destinations
    return config


def _events(stack: Stack, function: Function, ids: Ids) -> dict[str, Any]:
    events: dict[str, Any] = {}
    for mapping in (m for m in stack.mappings if m.function == function.name):
        properties: dict[str, Any] = {
            "Queue": get_att(ids["queue", mapping.queue], "Arn"),
            "BatchSize": mapping.batch_size,
            "Enabled": mapping.enabled,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        }
        if mapping.batching_window:
            properties["MaximumBatchingWindowInSeconds"] = mapping.batching_window
        if mapping.maximum_concurrency is not None:
            properties["ScalingConfig"] = {"MaximumConcurrency": mapping.maximum_concurrency}
        events[ids["queue", mapping.queue].removesuffix("Queue") + "Messages"] = {
            "Type": "SQS",
            "Properties": properties,
        }
    for subscription in (s for s in stack.subscriptions if s.function == function.name):
        topic = ids["topic", subscription.topic]
        events[topic.removesuffix("Topic") + "Notifications"] = {
            "Type": "SNS",
            "Properties": {"Topic": ref(topic), **subscription.filter_properties()},
        }
    for number, schedule in enumerate(function.schedules, 1):
        properties = {"Schedule": schedule.expression, "Enabled": schedule.enabled}
        if schedule.input is not None:
            properties["Input"] = json.dumps(schedule.input, sort_keys=True)
        events[f"Schedule{number}"] = {"Type": "Schedule", "Properties": properties}
    return events


def _environment_value(stack: Stack, value: str, ids: Ids) -> Any:
    from ._refs import parse_reference

    reference = parse_reference(value)
    return value if reference is None else _resolve(stack, reference, ids)


def _resolve(stack: Stack, reference: Reference, ids: Ids) -> Any:
    kind, name, attribute = reference.kind, reference.name, reference.attribute
    if kind == "queue":
        logical = ids["queue", name]
        found = {"url": ref(logical), "arn": get_att(logical, "Arn")}
        return found.get(attribute, get_att(logical, "QueueName"))
    if kind == "function":
        return name if attribute == "name" else arn("lambda", f"function:{name}")
    if kind == "topic":
        logical = ids["topic", name]
        return ref(logical) if attribute == "arn" else get_att(logical, "TopicName")
    resource = {"claim_check": stack.claim_check, "journal": stack.journal}.get(kind)
    if attribute == "prefix":
        return getattr(resource, "prefix", "")
    single = {"claim_check": "ClaimCheckBucket", "journal": "JournalBucket"}
    return ref(single.get(kind, "IdempotencyTable"))


def _outputs(stack: Stack, ids: Ids) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for queue in stack.all_queues():
        logical = ids["queue", queue.name]
        outputs[f"{logical}Url"] = {
            "Description": f"the URL of {queue.name}",
            "Value": ref(logical),
        }
    for topic in stack.topics:
        logical = ids["topic", topic.name]
        outputs[f"{logical}Arn"] = {
            "Description": f"the ARN of {topic.name}",
            "Value": ref(logical),
        }
    for function in stack.functions:
        logical = ids["function", function.name]
        outputs[f"{logical}Name"] = {"Description": "a function's name", "Value": ref(logical)}
    shared = (
        ("ClaimCheckBucket", stack.claim_check, "the claim-check bucket"),
        ("JournalBucket", stack.journal, "the journal bucket"),
        ("IdempotencyTable", stack.idempotency, "the idempotency table"),
    )
    for logical, part, what in shared:
        if part is not None:
            outputs[f"{logical}Name"] = {"Description": what, "Value": ref(logical)}
    return outputs
