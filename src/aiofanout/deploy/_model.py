"""The parts of a stack, each a frozen pydantic model checked where it is made.

These are the facts AWS checks at deploy time, checked here at load time, so a stack that loads
deploys: names AWS accepts, a timeout within Lambda's 900 s, a memory size Lambda offers, a
schedule expression EventBridge parses, an IAM statement that names its actions and resources.
What involves two parts (a mapping's queue must exist, a queue's visibility timeout follows its
consumers' timeouts) is checked by :class:`~aiofanout.deploy.Stack`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .._errors import UsageError

__all__ = [
    "REPLY_QUEUE_PREFIX",
    "EventInvoke",
    "Function",
    "LocalOptions",
    "Queue",
    "Schedule",
    "SqsMapping",
    "Statement",
    "Subscription",
    "Topic",
    "describe",
]

#: What ``replies=True`` names its queues (``targets/_reply_queue.py``): the prefix the IAM
#: statements of senders (create, read, delete) and workers (send) are scoped to.
REPLY_QUEUE_PREFIX = "aiofanout-replies-"

_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,75}(\.fifo)?")
_TOPIC_NAME = re.compile(r"[A-Za-z0-9_-]{1,251}(\.fifo)?")
_VARIABLE = re.compile(r"[a-zA-Z][a-zA-Z0-9_]+")
_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_CRON = re.compile(r"cron\((\S+ ){5}\S+\)")


class _Part(BaseModel):
    """A frozen part that refuses unknown fields; a wrong one is a :class:`UsageError`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise UsageError(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """A pydantic error as one line per problem: where, and what is wrong."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return f"{exc.title}: " + "; ".join(lines)


class Statement(_Part):
    """An IAM statement of your own on a function's role: named actions on named resources.

    Example::

        Statement(action=["s3:GetObject"], resource=["arn:aws:s3:::my-inputs/*"])
    """

    action: list[str] = Field(min_length=1)
    resource: list[str] = Field(min_length=1)

    @field_validator("action")
    @classmethod
    def _named_actions(cls, actions: list[str]) -> list[str]:
        for action in actions:
            if "*" in action or ":" not in action:
                raise ValueError(
                    f"{action!r}: name each action (service:Action); wildcards are refused "
                    "so every role stays least privilege"
                )
        return actions

    @field_validator("resource")
    @classmethod
    def _named_resources(cls, resources: list[str]) -> list[str]:
        if "*" in resources:
            raise ValueError("a resource of '*' is refused: name the ARNs the function needs")
        return resources


class Schedule(_Part):
    """An EventBridge schedule that invokes the function (SAM's ``Schedule`` event).

    Example::

        Schedule(expression="rate(15 minutes)", input={"run": "nightly"})
    """

    expression: str
    input: Any = None
    enabled: bool = True

    @field_validator("expression")
    @classmethod
    def _parses(cls, expression: str) -> str:
        rate = _RATE.fullmatch(expression)
        if rate is None and not _CRON.fullmatch(expression):
            raise ValueError(
                f"{expression!r} is not 'rate(N minutes|hours|days)' or 'cron(6 fields)'"
            )
        if rate is not None and (rate[1] == "1") != (not rate[2].endswith("s")):
            raise ValueError(
                f"{expression!r}: EventBridge wants 'rate(1 minute)', 'rate(5 minutes)'"
            )
        if rate is not None and int(rate[1]) < 1:
            raise ValueError(f"{expression!r}: the rate must be at least 1")
        return expression


class EventInvoke(_Part):
    """How Lambda handles the function's ``Event`` invocations: retries, age, destinations.

    ``on_success`` and ``on_failure`` name a queue of the stack (or give an SQS ARN). An
    ``Event`` worker answering replies makes its reply queue the ``on_failure`` destination,
    so an invocation that crashed or timed out ends its item with the runtime's error.

    Example::

        EventInvoke(maximum_retry_attempts=0, on_failure="event-replies")
    """

    maximum_retry_attempts: int | None = Field(default=None, ge=0, le=2)
    maximum_event_age: int | None = Field(default=None, ge=60, le=21600)
    on_success: str | None = None
    on_failure: str | None = None


class LocalOptions(_Part):
    """What only the local runtime has (faults, a burst buffer, retry delays); AWS ignores it.

    Example::

        LocalOptions(throttle_after=1.0, faults={"throttle": 0.1})
    """

    throttle_after: float = Field(default=0.0, ge=0)
    faults: dict[str, Any] = Field(default_factory=dict)
    event_retries: int | None = Field(default=None, ge=0, le=2)
    event_retry_delays: list[float] | None = None
    on_failure: str | None = None  # a queue URL: FunctionConfig.on_failure


class Function(_Part):
    """A Lambda function: its code, its settings, and what it may call.

    ``code_paths`` is the code directory (``build`` packs the first; the local runtime puts
    every one on the path). Its ``requirements.txt`` lists your own dependencies: ``build``
    adds aiofanout itself (the version that runs it) with ``extras`` (default: ``["aws"]``
    for a function that calls AWS, none otherwise). The permissions follow what it is said to
    do: ``invokes`` (functions), ``sends_to`` (queues), ``publishes_to`` (topics),
    ``gathers_replies`` (a sender with ``replies=True``), ``answers_replies`` (a worker; by
    default, when something invokes it, a mapping feeds it or it subscribes to a topic),
    ``uses`` (``claim_check``, ``idempotency``, ``journal``), ``continuation``
    (``orchestrate``: it invokes itself), and ``statements`` of your own.

    Example::

        Function(name="worker", handler="worker.lambda_handler", code_paths=[Path("src")],
                 timeout=30, memory=512, reserved_concurrency=8)
    """

    name: str
    handler: str
    code_paths: list[Path] = Field(default_factory=lambda: [Path()], min_length=1)
    requirements: Path | None = None
    memory: int = Field(default=128, ge=128, le=10240)
    timeout: float = Field(default=3.0, gt=0, le=900)
    architecture: Literal["x86_64", "arm64"] = "x86_64"
    reserved_concurrency: int | None = Field(default=None, ge=1)
    environment: dict[str, str] = Field(default_factory=dict)
    invokes: list[str] = Field(default_factory=list)
    sends_to: list[str] = Field(default_factory=list)
    publishes_to: list[str] = Field(default_factory=list)
    gathers_replies: bool = False
    answers_replies: bool | None = None
    uses: list[Literal["claim_check", "idempotency", "journal"]] = Field(default_factory=list)
    continuation: bool = False
    statements: list[Statement] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)
    event_invoke_config: EventInvoke | None = None
    bundle_aiofanout: bool = True
    extras: list[str] | None = None
    local: LocalOptions = Field(default_factory=LocalOptions)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _FUNCTION_NAME.fullmatch(name):
            raise ValueError(f"{name!r}: a function name is 1-64 of A-Z a-z 0-9 - _")
        return name

    @field_validator("handler")
    @classmethod
    def _handler(cls, handler: str) -> str:
        module, _, attr = handler.replace(":", ".").rpartition(".")
        if not module or not attr:
            raise ValueError(f"{handler!r}: a handler is 'module.attr', e.g. worker.lambda_handler")
        return handler

    @field_validator("environment")
    @classmethod
    def _environment(cls, environment: dict[str, str]) -> dict[str, str]:
        wrong = sorted(k for k in environment if not _VARIABLE.fullmatch(k))
        if wrong:
            raise ValueError(f"{wrong}: Lambda's variable names are [a-zA-Z][a-zA-Z0-9_]+")
        reserved = sorted(k for k in environment if k.startswith("AWS_"))
        if reserved:
            raise ValueError(f"{reserved}: Lambda reserves the AWS_* variables")
        return environment

    @property
    def code(self) -> Path:
        """The code directory ``build`` packs."""
        return self.code_paths[0]

    @property
    def calls_aws(self) -> bool:
        """Whether the function's code calls AWS through aiofanout (and so needs ``aws``)."""
        return bool(
            self.invokes
            or self.sends_to
            or self.publishes_to
            or self.gathers_replies
            or self.answers_replies
            or self.uses
            or self.continuation
        )


class Queue(_Part):
    """An SQS queue; a queue a mapping consumes gets a dead-letter queue and redrive policy.

    ``visibility_timeout`` defaults to 6x the longest timeout of its consumers (plus their
    batching window), at least 30 s; a value under that is refused. ``dead_letter`` names
    another queue of the stack (a consumed queue without one gets ``<name>-dlq``), where a
    message goes after ``max_receive_count`` receives. ``replies`` marks a shared reply queue
    (``replies=<its url>``): workers may send to it, senders gathering replies read it.
    ``attributes`` are further SQS attributes by their AWS names (``DelaySeconds``, ...).

    Example::

        Queue(name="work", max_receive_count=3)
    """

    name: str
    visibility_timeout: int | None = Field(default=None, ge=0, le=43200)
    retention: int | None = Field(default=None, ge=60, le=1209600)
    dead_letter: str | None = None
    max_receive_count: int = Field(default=5, ge=1, le=1000)
    replies: bool = False
    attributes: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _QUEUE_NAME.fullmatch(name):
            raise ValueError(
                f"{name!r}: a queue name is 1-80 of A-Z a-z 0-9 - _ (.fifo at the end)"
            )
        if name.startswith(REPLY_QUEUE_PREFIX):
            raise ValueError(
                f"{name!r}: {REPLY_QUEUE_PREFIX}* is for the queues replies=True makes"
            )
        return name

    @model_validator(mode="after")
    def _attributes(self) -> Queue:
        owned = {"VisibilityTimeout", "MessageRetentionPeriod", "RedrivePolicy", "FifoQueue"}
        clash = sorted(owned & set(self.attributes))
        if clash:
            raise ValueError(
                f"attributes {clash}: use visibility_timeout, retention, dead_letter and "
                "max_receive_count (a .fifo name makes a FIFO queue)"
            )
        return self

    @property
    def fifo(self) -> bool:
        """Whether the queue is FIFO (its name ends in ``.fifo``)."""
        return self.name.endswith(".fifo")


class Topic(_Part):
    """An SNS topic (``SnsTarget``'s); a name ending in ``.fifo`` makes a FIFO topic.

    ``content_based_deduplication`` (FIFO only) lets the topic deduplicate by the message's
    content, so senders need no ``dedup_id``.

    Example::

        Topic(name="tasks")
    """

    name: str
    content_based_deduplication: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _TOPIC_NAME.fullmatch(name):
            raise ValueError(
                f"{name!r}: a topic name is 1-256 of A-Z a-z 0-9 - _ (.fifo at the end)"
            )
        return name

    @model_validator(mode="after")
    def _deduplication(self) -> Topic:
        if self.content_based_deduplication and not self.fifo:
            raise ValueError("content_based_deduplication is for FIFO topics (.fifo)")
        return self

    @property
    def fifo(self) -> bool:
        """Whether the topic is FIFO (its name ends in ``.fifo``)."""
        return self.name.endswith(".fifo")


class Subscription(_Part):
    """A topic's subscription: a function (Lambda invokes it, one message per event) or a queue.

    A queue's messages are SNS's notification JSON unless ``raw`` (raw message delivery: the
    message itself); the worker's ``App`` reads both. Feed the queue to a function with an
    ``[[event_source_mapping]]``.

    ``filter_policy`` (SNS's ``FilterPolicy``, a JSON object) has the subscription take only the
    messages it accepts: by their message attributes (``SnsTarget(message_attributes=...)``), or
    with ``filter_policy_scope = "MessageBody"`` by fields of the message (the envelope's
    ``task``, say). One topic can so feed a queue or a function per kind of work.

    Example::

        Subscription(topic="tasks", function="worker")
        Subscription(topic="tasks", queue="audit", raw=True)
        Subscription(topic="tasks", queue="images", filter_policy={"kind": ["image"]})
    """

    topic: str
    function: str | None = None
    queue: str | None = None
    raw: bool = False
    filter_policy: dict[str, Any] | None = None
    filter_policy_scope: Literal["MessageAttributes", "MessageBody"] | None = None

    @model_validator(mode="after")
    def _one_endpoint(self) -> Subscription:
        if (self.function is None) == (self.queue is None):
            raise ValueError("a subscription names a function or a queue (one of them)")
        if self.raw and self.queue is None:
            raise ValueError("raw (raw message delivery) is for a queue's subscription")
        if self.filter_policy == {}:
            raise ValueError("filter_policy is empty: leave it out to take every message")
        if self.filter_policy_scope is not None and self.filter_policy is None:
            raise ValueError("filter_policy_scope says what a filter_policy matches: give one")
        return self

    def filter_properties(self) -> dict[str, Any]:
        """``FilterPolicy`` and ``FilterPolicyScope`` as CloudFormation and SAM spell them."""
        properties: dict[str, Any] = {}
        if self.filter_policy is not None:
            properties["FilterPolicy"] = self.filter_policy
        if self.filter_policy_scope is not None:
            properties["FilterPolicyScope"] = self.filter_policy_scope
        return properties

    @property
    def endpoint(self) -> str:
        """What it delivers to, as messages say it: ``function 'worker'``, ``queue 'audit'``."""
        return f"function {self.function!r}" if self.function else f"queue {self.queue!r}"


class SqsMapping(_Part):
    """An SQS event source mapping; ``ReportBatchItemFailures`` is always on.

    aiofanout's worker answers an SQS batch with ``batchItemFailures``; without the setting,
    one failed record would send the whole batch back. ``maximum_concurrency`` (2-1,000) caps
    the concurrent batches (``ScalingConfig.MaximumConcurrency``; locally, the pollers).

    Example::

        SqsMapping(queue="work", function="worker", batch_size=10, maximum_concurrency=5)
    """

    queue: str
    function: str
    batch_size: int = Field(default=10, ge=1, le=10000)
    batching_window: int = Field(default=0, ge=0, le=300)
    maximum_concurrency: int | None = Field(default=None, ge=2, le=1000)
    enabled: bool = True

    @model_validator(mode="after")
    def _window(self) -> SqsMapping:
        if self.batch_size > 10 and self.batching_window < 1:
            raise ValueError("a batch_size over 10 needs a batching_window of at least 1 s")
        return self
