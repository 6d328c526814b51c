"""SNS topics and subscriptions in the stack file: checked, in the SAM template (cfn-lint clean
before and after the SAM transform), made by ``serve --config`` and by ``serve --template`` on
the local stack, where a published envelope reaches the worker through each subscription."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from aiofanout import SnsTarget, UsageError, dispatch_many
from aiofanout.deploy import Stack, sam_template
from aiofanout.local import LocalAws, Template, stack
from aiofanout.testing import eventually

from .deploy_helpers import FILTERED, FILTERED_TOPICS, FUNCTIONS, TOPICS, write_template


def topic_arn(name: str) -> str:
    return f"arn:aws:sns:us-east-1:123456789012:{name}"  # the local stack's account


def stack_of(tmp_path: Path, text: str, name: str = "stack.toml") -> Stack:
    path = tmp_path / name
    path.write_text(text)
    return Stack.load(path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[[subscription]]\ntopic = "nope"\nfunction = "worker"\n', "'nope' is not a"),
        ('[[subscription]]\ntopic = "orders.fifo"\nfunction = "worker"\n', "SQS queues only"),
        ('[[subscription]]\ntopic = "tasks"\nqueue = "orders.fifo"\n', "standard topic"),
        ('[[subscription]]\ntopic = "tasks"\nfunction = "worker"\nraw = true\n', "raw"),
        ('[[subscription]]\ntopic = "tasks"\n', "a function or a queue"),
        ('[[topic]]\nname = "plain"\ncontent_based_deduplication = true\n', "FIFO topics"),
        ('[[subscription]]\ntopic = "tasks"\nqueue = "audit"\nfilter_policy = {}\n', "empty"),
        (
            '[[subscription]]\ntopic = "tasks"\nqueue = "audit"\n'
            'filter_policy_scope = "MessageBody"\n',
            "give one",
        ),
        (
            '[[subscription]]\ntopic = "tasks"\nqueue = "audit"\nfilter_policy = { a = ["b"] }\n'
            'filter_policy_scope = "Body"\n',
            "MessageAttributes",
        ),
    ],
)
def test_a_wrong_subscription_or_topic_says_what_is_wrong(
    tmp_path: Path, extra: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        stack_of(tmp_path, TOPICS + extra)


def test_the_template_carries_topics_subscriptions_policies_and_references(
    tmp_path: Path,
) -> None:
    template = sam_template(stack_of(tmp_path, TOPICS))
    resources = template["Resources"]
    assert resources["TasksTopic"] == {
        "Type": "AWS::SNS::Topic", "Properties": {"TopicName": "tasks"},
    }  # fmt: skip
    assert resources["OrdersFifoTopic"]["Properties"] == {
        "TopicName": "orders.fifo", "FifoTopic": True, "ContentBasedDeduplication": True,
    }  # fmt: skip
    # A function's subscription is its SAM SNS event; a queue's, a subscription and a policy.
    events = resources["WorkerFunction"]["Properties"]["Events"]
    assert events["TasksNotifications"] == {
        "Type": "SNS", "Properties": {"Topic": {"Ref": "TasksTopic"}},
    }  # fmt: skip
    audit = resources["TasksAuditSubscription"]["Properties"]
    assert audit == {
        "Protocol": "sqs",
        "TopicArn": {"Ref": "TasksTopic"},
        "Endpoint": {"Fn::GetAtt": ["AuditQueue", "Arn"]},
        "RawMessageDelivery": True,
    }
    assert "RawMessageDelivery" not in resources["OrdersFifoOrdersFifoSubscription"]["Properties"]
    [allow] = resources["AuditQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert allow["Principal"] == {"Service": "sns.amazonaws.com"}
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": [{"Ref": "TasksTopic"}]}}
    sender = resources["SenderRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    [publish] = [s for s in sender if s["Sid"] == "PublishToTopics"]
    assert publish["Action"] == ["sns:Publish"]
    assert publish["Resource"] == [{"Ref": "TasksTopic"}, {"Ref": "OrdersFifoTopic"}]
    variables = resources["SenderFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["TASKS"] == {"Ref": "TasksTopic"}
    assert template["Outputs"]["TasksTopicArn"]["Value"] == {"Ref": "TasksTopic"}
    from aiofanout.local._stack import _local_values  # what serve --config gives references

    described = stack_of(tmp_path, TOPICS)
    values = _local_values(described, {q.name: q.name for q in described.all_queues()})
    assert values["${topic.tasks.arn}"] == topic_arn("tasks")


def test_the_template_carries_each_subscriptions_filter_policy(tmp_path: Path) -> None:
    resources = sam_template(stack_of(tmp_path, FILTERED_TOPICS))["Resources"]
    images = resources["JobsImagesSubscription"]["Properties"]
    assert images["FilterPolicy"] == {"kind": ["image"]}
    assert "FilterPolicyScope" not in images  # AWS's default: the message attributes
    videos = resources["JobsVideosSubscription"]["Properties"]
    assert (videos["FilterPolicy"], videos["FilterPolicyScope"]) == (
        {"task": ["transcode"]},
        "MessageBody",
    )
    event = resources["WorkerFunction"]["Properties"]["Events"]["JobsNotifications"]
    assert event["Properties"]["FilterPolicy"] == {
        "kind": ["text"],
        "size": [{"numeric": ["<", 100]}],
    }
    assert "FilterPolicy" not in resources["TasksAuditSubscription"]["Properties"]


# The template's cfn-lint, before and after the SAM transform, is in test_deploy.py's one run.


# -- on the local stack ----------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def aws() -> AsyncIterator[LocalAws]:
    async with stack() as local:
        # One reply queue for the module: a second delivery's reply (two subscriptions) lands on
        # a queue that still exists, and is counted as a duplicate.
        local.replies = await local.create_queue("topic-replies")  # type: ignore[attr-defined]
        yield local


def sender(aws: LocalAws, arn: str, **options: Any) -> SnsTarget:
    return SnsTarget(
        arn,
        task="square",
        replies=aws.replies,  # type: ignore[attr-defined]
        endpoint_url=aws.endpoint_url,
        region_name="us-east-1",
        **options,
    )


async def each_subscription_delivers(aws: LocalAws, arn: str) -> None:
    """A function and a queue subscribe to ``arn``: every item runs in both, one reply counts."""
    async with aws.client("sns") as sns:
        found = await sns.list_subscriptions_by_topic(TopicArn=arn)
    assert sorted(s["Protocol"] for s in found["Subscriptions"]) == ["lambda", "sqs"]
    tasks = sender(aws, arn)
    async with tasks.opened(concurrency=2, timeout=20):  # open: its reply queue still read
        result = await dispatch_many(tasks, [2, 3], concurrency=2, timeout=20)
        assert result.values() == [4, 9]
        await eventually(lambda: tasks.reply_stats.duplicates == 2)  # both subscriptions ran


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_serve_config_makes_the_topics_and_each_subscription_delivers(
    aws: LocalAws, tmp_path: Path
) -> None:
    from aiofanout.local._stack import StackFile  # what serve --config applies

    path = tmp_path / "stack.toml"
    path.write_text(TOPICS)
    await StackFile.load(path).apply(aws)
    await each_subscription_delivers(aws, topic_arn("tasks"))
    orders = sender(aws, topic_arn("orders.fifo"), group_id="g")  # content-based dedup
    ordered = await dispatch_many(orders, [5], concurrency=1, timeout=20)
    assert ordered.values() == [25], [o.error for o in ordered]


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_serve_template_runs_the_built_template_with_its_subscriptions(
    aws: LocalAws, tmp_path: Path
) -> None:
    text = TOPICS.replace('name = "worker"', 'name = "t-worker"')
    text = text.replace('function = "worker"', 'function = "t-worker"')
    text = text.replace('name = "sender"', 'name = "t-sender"')
    for name in ("audit", "orders.fifo", "tasks"):
        text = text.replace(f'"{name}"', f'"t-{name}"')
    text = text.replace("${topic.tasks.arn}", "${topic.t-tasks.arn}")
    built = stack_of(tmp_path, text)
    uris = {f.name: str(FUNCTIONS) for f in built.functions}
    path = write_template(sam_template(built, uris), tmp_path / "template.yaml")
    template = Template.load(path, stack_name="topics")
    async with template.deploy(aws, isolated=False) as deployed:
        assert deployed.resources["TTasksTopic"] == topic_arn("t-tasks")
        await each_subscription_delivers(aws, topic_arn("t-tasks"))


async def each_queue_gets_only_its_own(aws: LocalAws, arn: str, images: str, videos: str) -> None:
    """Resizes by attribute to ``images``, transcodes by the envelope's task to ``videos``."""

    def publisher(task: str, **options: Any) -> SnsTarget:
        return SnsTarget(
            arn, task=task, endpoint_url=aws.endpoint_url, region_name="us-east-1", **options
        )

    resize = publisher("resize", message_attributes=lambda n: {"kind": "image" if n else "text"})
    assert all(o.ok for o in await dispatch_many(resize, [0, 1, 2], concurrency=1))
    assert all(o.ok for o in await dispatch_many(publisher("transcode"), [3], concurrency=1))
    async with aws.client("sqs") as sqs:  # moto delivered inside each publish

        async def tasks_in(queue: str) -> list[tuple[str, int]]:
            url = (await sqs.get_queue_url(QueueName=queue))["QueueUrl"]
            answer = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            envelopes = [json.loads(m["Body"]) for m in answer.get("Messages", [])]
            return sorted((e["task"], e["args"][0]) for e in envelopes)

        assert await tasks_in(images) == [("resize", 1), ("resize", 2)]
        assert await tasks_in(videos) == [("transcode", 3)]


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_serve_config_and_serve_template_subscribe_with_filter_policies(
    aws: LocalAws, tmp_path: Path
) -> None:
    from aiofanout.local._stack import StackFile  # what serve --config applies

    path = tmp_path / "filtered.toml"
    path.write_text(FILTERED)
    await StackFile.load(path).apply(aws)
    await each_queue_gets_only_its_own(aws, topic_arn("jobs"), "images", "videos")
    text = FILTERED
    for name in ("images", "videos", "jobs"):
        text = text.replace(f'"{name}"', f'"t-{name}"')
    built = write_template(sam_template(stack_of(tmp_path, text)), tmp_path / "filtered.yaml")
    async with Template.load(built, stack_name="filtered").deploy(aws, isolated=False):
        await each_queue_gets_only_its_own(aws, topic_arn("t-jobs"), "t-images", "t-videos")
