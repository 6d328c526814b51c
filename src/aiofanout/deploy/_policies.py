"""Each function's IAM statements: the actions its code and its triggers need, on named resources.

Least privilege by construction: every statement lists its actions by name (no wildcard) and
the ARNs it applies to (never ``*``). The actions are the calls the library makes, read from
its code: the reply queue (``targets/_reply_queue.py``: create, receive, delete messages,
delete the queue), the reply sender (``SendMessage(Batch)``, one permission), ``DynamoDBStore``
(describe, get, put, update, delete an item), ``S3Journal`` (get, put, list its prefix), the
claim check (put, get, head, delete under its prefix), and Lambda's own SQS poller (receive,
delete, get attributes) and destinations (send), which act with the function's role, and
``SnsTarget``'s ``PublishBatch`` (``sns:Publish``, the action it is authorized by).
"""

from __future__ import annotations

from typing import Any

from ._cfn_functions import arn, get_att, ref, sub
from ._description import Stack
from ._model import REPLY_QUEUE_PREFIX, Function

__all__ = ["Ids", "statements"]

Ids = dict[tuple[str, str], str]  # (kind, name) -> logical id

POLL = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
GATHER = ["sqs:CreateQueue", "sqs:DeleteQueue", "sqs:ReceiveMessage", "sqs:DeleteMessage"]
TABLE = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem"]
TABLE += ["dynamodb:UpdateItem", "dynamodb:DeleteItem"]


def statements(stack: Stack, function: Function, ids: Ids) -> list[dict[str, Any]]:
    """The statements of the function's role, each with a ``Sid`` saying what it is for."""
    found = [
        _allow(
            "Logs",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [get_att(ids["log", function.name], "Arn")],
        ),
        *_queues(stack, function, ids),
        *_topics(function, ids),
        *_invokes(function),
        *_replies(stack, function, ids),
        *_resources(stack, function),
    ]
    for number, own in enumerate(function.statements, 1):
        found.append(_allow(f"Own{number}", own.action, list(own.resource)))
    return found


def _allow(sid: str, actions: list[str], resources: list[Any]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def _queue_arn(ids: Ids, name: str) -> Any:
    return name if name.startswith("arn:") else get_att(ids["queue", name], "Arn")


def _queues(stack: Stack, function: Function, ids: Ids) -> list[dict[str, Any]]:
    found = []
    consumed = [m.queue for m in stack.mappings if m.function == function.name]
    if consumed:
        found.append(_allow("PollQueues", POLL, [_queue_arn(ids, q) for q in consumed]))
    if function.sends_to:
        arns = [_queue_arn(ids, q) for q in function.sends_to]
        found.append(_allow("SendToQueues", ["sqs:SendMessage"], arns))
    invoke = function.event_invoke_config
    destinations = [d for d in (invoke.on_success, invoke.on_failure) if d] if invoke else []
    if destinations:
        arns = [_queue_arn(ids, d) for d in dict.fromkeys(destinations)]
        found.append(_allow("EventDestinations", ["sqs:SendMessage"], arns))
    return found


def _topics(function: Function, ids: Ids) -> list[dict[str, Any]]:
    if not function.publishes_to:
        return []
    arns = [ref(ids["topic", name]) for name in function.publishes_to]  # a topic's Ref: its ARN
    return [_allow("PublishToTopics", ["sns:Publish"], arns)]


def _invokes(function: Function) -> list[dict[str, Any]]:
    names = [*function.invokes, *([function.name] if function.continuation else [])]
    if not names:
        return []
    # The bare ARN and its qualified forms (versions, aliases: LambdaTarget(qualifier=...)).
    arns = [
        arn("lambda", f"function:{n}{tail}") for n in dict.fromkeys(names) for tail in ("", ":*")
    ]
    return [_allow("InvokeFunctions", ["lambda:InvokeFunction"], arns)]


def _replies(stack: Stack, function: Function, ids: Ids) -> list[dict[str, Any]]:
    found = []
    prefix = arn("sqs", f"{REPLY_QUEUE_PREFIX}*")
    shared = [get_att(ids["queue", q.name], "Arn") for q in stack.reply_queues()]
    if stack.answers_replies(function):
        found.append(_allow("AnswerReplies", ["sqs:SendMessage"], [prefix, *shared]))
    if function.gathers_replies:
        found.append(_allow("GatherReplies", GATHER, [prefix]))
        if shared:
            read = ["sqs:ReceiveMessage", "sqs:DeleteMessage"]
            found.append(_allow("ReadSharedReplies", read, shared))
    return found


def _resources(stack: Stack, function: Function) -> list[dict[str, Any]]:
    found = []
    claims, journal = stack.claim_check, stack.journal
    if "claim_check" in function.uses and claims is not None:
        objects = sub(f"${{ClaimCheckBucket.Arn}}/{claims.prefix}*")
        actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
        found.append(_allow("ClaimCheck", actions, [objects]))
    if "idempotency" in function.uses:
        found.append(_allow("Idempotency", TABLE, [get_att("IdempotencyTable", "Arn")]))
    if ("journal" in function.uses or function.continuation) and journal is not None:
        objects = sub(f"${{JournalBucket.Arn}}/{journal.prefix}*")
        found.append(_allow("JournalObjects", ["s3:GetObject", "s3:PutObject"], [objects]))
        listing = _allow("JournalList", ["s3:ListBucket"], [get_att("JournalBucket", "Arn")])
        if journal.prefix:
            listing["Condition"] = {"StringLike": {"s3:prefix": [f"{journal.prefix}*"]}}
        found.append(listing)
    return found
