"""The embedded stack (a moto server, the local Lambda runtime) and the stack file that fills it.

:func:`stack` starts both (a moto server for SQS, S3, DynamoDB, IAM, ...) and yields
:class:`LocalAws`. A stack file is what a team commits: the one description of its stack,
read by :class:`aiofanout.deploy.Stack` (its tables are listed there), which ``python -m
aiofanout build`` turns into a SAM template and ``python -m aiofanout serve --config
stack.toml`` sets up here, so everyone's local stack is the one that gets deployed::

    [[queue]]
    name = "work"                     # consumed below: gets work-dlq and a 6x visibility

    [[function]]
    name = "worker"
    handler = "worker.lambda_handler"
    code = "examples"                 # or code_path = "...", code_paths = [...]
    timeout = 30
    environment = { STAGE = "local", WORK_QUEUE = "${queue.work.url}" }
    throttle_after = 1.0              # local only: FunctionConfig's fields of the runtime
    [function.event_invoke_config]    # PutFunctionEventInvokeConfig, snake case
    maximum_retry_attempts = 0
    on_failure = "failures"           # a queue name (or an SQS ARN)

    [[event_source_mapping]]
    queue = "work"
    function = "worker"
    batch_size = 10
    maximum_concurrency = 5           # locally: the pollers

    [[topic]]
    name = "tasks"                    # SnsTarget("${topic.tasks.arn}", ...)

    [[subscription]]
    topic = "tasks"
    function = "worker"               # the moto server invokes it on the local runtime
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

from .._aws import aioboto3_module
from .._log_fields import library_logger
from ..deploy import EventInvoke, Function, Queue, SqsMapping, Stack, Subscription
from ..worker._dynamodb import TABLE_SCHEMA, TTL_ATTRIBUTE
from ._account import REGION, function_arn, queue_arn, topic_arn
from ._config import AccountLimits, EventSourceMapping, FunctionConfig
from ._events import KEY, EventInvokeConfig
from ._faults import Faults
from ._moto import MotoServer, fake_aws_credentials, free_port
from ._runtime import LocalLambda

log = library_logger("aiofanout.local")
#: Environments of a function whose stack file reserves none (AWS: the account's pool).
DEFAULT_RESERVED = 10
#: Pollers of a mapping without maximum_concurrency (AWS starts at five batches and scales).
DEFAULT_POLLERS = 2


@dataclass
class LocalAws:
    """What :func:`stack` yields: endpoints, a ready aioboto3 session, the runtime itself.

    Example::

        async with stack() as aws, aws.client("sqs") as sqs:
            url = await aws.create_queue("work")
            await sqs.send_message(QueueUrl=url, MessageBody="{}")
    """

    endpoint_url: str
    lambda_endpoint_url: str
    session: Any
    runtime: LocalLambda
    moto: MotoServer
    region: str = REGION

    def client(self, service: str, **kwargs: Any) -> Any:
        """An aioboto3 client of ``service`` on the right local endpoint (``async with`` it)."""
        endpoint = self.lambda_endpoint_url if service == "lambda" else self.endpoint_url
        return self.session.client(service, endpoint_url=endpoint, **kwargs)

    def add_function(self, config: FunctionConfig) -> None:
        """Register a function with the runtime (see :class:`FunctionConfig`)."""
        self.runtime.add_function(config)

    async def add_event_source(self, mapping: EventSourceMapping) -> str:
        """Start an SQS event source mapping (see :class:`EventSourceMapping`); its UUID."""
        return await self.runtime.add_event_source(mapping)

    async def create_queue(self, name: str, **attributes: str) -> str:
        """Create an SQS queue on the moto server; return its URL."""
        async with self.client("sqs") as sqs:
            response = await sqs.create_queue(QueueName=name, Attributes=attributes)
            return str(response["QueueUrl"])


@contextlib.asynccontextmanager
async def stack(
    *,
    functions: Sequence[FunctionConfig] = (),
    credentials: bool = True,
    port: int = 0,
    moto_port: int = 0,
    account: AccountLimits | None = None,
) -> AsyncIterator[LocalAws]:
    """Start a moto server and the local Lambda runtime on loopback ports; stop both after.

    Every environment process is stopped on exit, also on error and on Ctrl-C. With
    ``credentials`` (the default), fake AWS credentials are set in this process for the
    duration, so nothing can reach real AWS by accident. ``port`` and ``moto_port`` fix the
    Lambda API's and the moto server's ports (0, the default: free ones). ``account``: the
    account's Lambda limits (:class:`AccountLimits`; AWS's defaults without it).

    Example::

        async with aiofanout.local.stack() as aws:
            aws.add_function(FunctionConfig("worker", "worker.lambda_handler",
                                            code_paths=["examples"]))
            target = LambdaTarget("worker", task="thumbnail", endpoint_url=aws.lambda_endpoint_url)
            result = await dispatch_many(target, keys, concurrency=20)
    """
    credentials_set = fake_aws_credentials() if credentials else contextlib.nullcontext()
    # The runtime's port is chosen first: the moto server invokes SNS's Lambda subscriptions there.
    port = port or free_port()
    moto = MotoServer(port=moto_port or None, lambda_endpoint_url=f"http://127.0.0.1:{port}")
    with credentials_set:
        try:
            await anyio.to_thread.run_sync(moto.start)
            runtime = LocalLambda(sqs_endpoint_url=moto.endpoint_url, port=port, account=account)
            await runtime.start()
            try:
                for config in functions:
                    runtime.add_function(config)
                yield _local_aws(moto, runtime)
            finally:
                await runtime.stop()
        finally:
            moto.stop()


def _local_aws(moto: MotoServer, runtime: LocalLambda) -> LocalAws:
    return LocalAws(
        endpoint_url=moto.endpoint_url,
        lambda_endpoint_url=runtime.endpoint_url,
        session=aioboto3_module("stack()").Session(region_name=REGION),
        runtime=runtime,
        moto=moto,
    )


# -- the stack file ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StackFile:
    """A stack file's :class:`aiofanout.deploy.Stack`, made into the local stack's parts.

    The stack is read by the one reader ``build`` uses too, and its derived facts (dead-letter
    queues, visibility timeouts) come from it, so what runs here is what gets deployed.
    """

    stack: Stack = field(default_factory=Stack)

    @classmethod
    def load(cls, path: str | Path) -> StackFile:
        """Read and check the file at ``path`` (:class:`UsageError` says what is wrong)."""
        return cls(Stack.load(path))

    @property
    def functions(self) -> list[FunctionConfig]:
        """The functions as declared (references in their environment not yet resolved)."""
        return [_function_config(function, None) for function in self.stack.functions]

    async def apply(self, aws: LocalAws) -> None:
        """Create the queues and resources, register the functions, start the mappings."""
        urls = {}
        for queue in self.stack.all_queues():
            urls[queue.name] = await aws.create_queue(queue.name, **_attributes(self.stack, queue))
        await _create_resources(aws, self.stack)
        values = _local_values(self.stack, urls)
        for function in self.stack.functions:
            aws.add_function(_function_config(function, values))
            if function.event_invoke_config is not None:
                invoke = _event_invoke(function.event_invoke_config)
                aws.runtime.functions.get(function.name).settings[KEY] = invoke
            if function.schedules:
                log.warning(
                    "%s: its schedules fire on AWS; serve --config does not fire them (invoke "
                    "it by hand)",
                    function.name,
                )
        for mapping in self.stack.mappings:
            if mapping.enabled:
                await aws.add_event_source(_mapping(mapping, urls))
        await _create_topics(aws, self.stack)


def _attributes(stack: Stack, queue: Queue) -> dict[str, str]:
    attributes = dict(queue.attributes)
    visibility = stack.visibility_timeout(queue)
    if visibility is not None:
        attributes["VisibilityTimeout"] = str(visibility)
    if queue.retention is not None:
        attributes["MessageRetentionPeriod"] = str(queue.retention)
    if queue.fifo:
        attributes["FifoQueue"] = "true"
    dead_letter = stack.dead_letter(queue)
    if dead_letter is not None:
        policy = {
            "deadLetterTargetArn": queue_arn(dead_letter),
            "maxReceiveCount": queue.max_receive_count,
        }
        attributes["RedrivePolicy"] = json.dumps(policy)
    return attributes


async def _create_resources(aws: LocalAws, stack: Stack) -> None:
    buckets = [part.local_name for part in (stack.claim_check, stack.journal) if part]
    if buckets:
        async with aws.client("s3") as s3:
            for bucket in buckets:
                await s3.create_bucket(Bucket=bucket)
    if stack.idempotency is not None:
        async with aws.client("dynamodb") as dynamodb:
            table = stack.idempotency.table
            await dynamodb.create_table(TableName=table, **TABLE_SCHEMA)
            await dynamodb.update_time_to_live(
                TableName=table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
            )


async def _create_topics(aws: LocalAws, stack: Stack) -> None:
    """The topics and their subscriptions (a function's: the moto server invokes it here)."""
    if not stack.topics:
        return
    async with aws.client("sns") as sns:
        for topic in stack.topics:
            attributes = {"FifoTopic": "true"} if topic.fifo else {}
            if topic.content_based_deduplication:  # moto reads any value as on: "false" too
                attributes["ContentBasedDeduplication"] = "true"
            await sns.create_topic(Name=topic.name, Attributes=attributes)
        for subscription in stack.subscriptions:
            await sns.subscribe(TopicArn=topic_arn(subscription.topic), **_endpoint(subscription))


def _endpoint(subscription: Subscription) -> dict[str, Any]:
    """A subscription's ``Subscribe`` arguments: its protocol, endpoint and attributes."""
    attributes = {"RawMessageDelivery": "true"} if subscription.raw else {}  # moto: "false" is on
    for key, value in subscription.filter_properties().items():
        attributes[key] = value if isinstance(value, str) else json.dumps(value)
    if subscription.function is not None:
        endpoint = {"Protocol": "lambda", "Endpoint": function_arn(subscription.function)}
    else:
        endpoint = {"Protocol": "sqs", "Endpoint": queue_arn(str(subscription.queue))}
    return {**endpoint, "Attributes": attributes}


def _local_values(stack: Stack, urls: dict[str, str]) -> dict[str, str]:
    """What each reference a function's environment may hold is on this stack."""
    values = {}
    for queue in stack.all_queues():
        name = queue.name
        values[f"${{queue.{name}.url}}"] = urls[name]
        values[f"${{queue.{name}.arn}}"] = queue_arn(name)
        values[f"${{queue.{name}.name}}"] = name
    for topic in stack.topics:
        values[f"${{topic.{topic.name}.arn}}"] = topic_arn(topic.name)
        values[f"${{topic.{topic.name}.name}}"] = topic.name
    for function in stack.functions:
        values[f"${{function.{function.name}.name}}"] = function.name
        values[f"${{function.{function.name}.arn}}"] = function_arn(function.name)
    for kind, part in (("claim_check", stack.claim_check), ("journal", stack.journal)):
        if part is not None:
            values[f"${{{kind}.bucket}}"] = part.local_name
            values[f"${{{kind}.prefix}}"] = part.prefix
    if stack.idempotency is not None:
        values["${idempotency.table}"] = stack.idempotency.table
    return values


def _function_config(function: Function, values: dict[str, str] | None) -> FunctionConfig:
    local = function.local
    environment = {k: (values or {}).get(v, v) for k, v in function.environment.items()}
    optional: dict[str, Any] = {}
    if local.event_retries is not None:
        optional["event_retries"] = local.event_retries
    if local.event_retry_delays is not None:
        optional["event_retry_delays"] = tuple(local.event_retry_delays)
    return FunctionConfig(
        function.name,
        function.handler,
        timeout=function.timeout,
        memory=function.memory,
        environment=environment,
        reserved_concurrency=function.reserved_concurrency or DEFAULT_RESERVED,
        throttle_after=local.throttle_after,
        code_paths=[str(path) for path in function.code_paths],
        faults=Faults(**local.faults),
        on_failure=local.on_failure,
        **optional,
    )


def _event_invoke(invoke: EventInvoke) -> EventInvokeConfig:
    def arn(name: str | None) -> str | None:
        return name if name is None or name.startswith("arn:") else queue_arn(name)

    return EventInvokeConfig(
        maximum_retry_attempts=invoke.maximum_retry_attempts,
        maximum_event_age=invoke.maximum_event_age,
        on_success=arn(invoke.on_success),
        on_failure=arn(invoke.on_failure),
    )


def _mapping(mapping: SqsMapping, urls: dict[str, str]) -> EventSourceMapping:
    return EventSourceMapping(
        urls[mapping.queue],
        mapping.function,
        batch_size=mapping.batch_size,
        batching_window=mapping.batching_window,
        pollers=mapping.maximum_concurrency or DEFAULT_POLLERS,
    )
