"""The embedded stack (a moto server, the local Lambda runtime) and the stack file that fills it.

:func:`stack` starts both (a moto server for SQS, S3, DynamoDB, IAM, ...) and yields
:class:`LocalAws`. A stack file is what a team commits: its functions, queues, mappings and
event invoke configs. It is TOML (read with the standard library's ``tomllib``), so it takes
comments; relative paths are relative to the file. ``python -m aiofanout serve --config
local-aws.toml`` sets it all up, so everyone's local stack is the same::

    [[queue]]
    name = "work"
    attributes = { VisibilityTimeout = "30" }

    [[function]]
    name = "worker"
    handler = "worker.lambda_handler"
    code_path = "examples"            # or code_paths = [...]
    timeout = 30                      # FunctionConfig's fields, by name
    environment = { STAGE = "local" }
    [function.event_invoke_config]    # PutFunctionEventInvokeConfig, snake case
    maximum_retry_attempts = 0
    maximum_event_age = 3600
    on_failure = "failures"           # a queue name (or an SQS ARN)

    [[event_source_mapping]]
    queue = "work"
    function = "worker"
    batch_size = 10                   # EventSourceMapping's fields, by name
    maximum_concurrency = 5
"""

from __future__ import annotations

import contextlib
import tomllib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

from .._aws import aioboto3_module
from .._errors import UsageError
from ._account import REGION, queue_arn
from ._config import EventSourceMapping, FunctionConfig
from ._events import KEY, EventInvokeConfig
from ._moto import MotoServer, fake_aws_credentials
from ._runtime import LocalLambda


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
) -> AsyncIterator[LocalAws]:
    """Start a moto server and the local Lambda runtime on loopback ports; stop both after.

    Every environment process is stopped on exit, also on error and on Ctrl-C. With
    ``credentials`` (the default), fake AWS credentials are set in this process for the
    duration, so nothing can reach real AWS by accident. ``port`` and ``moto_port`` fix the
    Lambda API's and the moto server's ports (0, the default: free ones).

    Example::

        async with aiofanout.local.stack() as aws:
            aws.add_function(FunctionConfig("worker", "worker.lambda_handler",
                                            code_paths=["examples"]))
            target = LambdaTarget("worker", task="thumbnail", endpoint_url=aws.lambda_endpoint_url)
            result = await dispatch_many(target, keys, concurrency=20)
    """
    credentials_set = fake_aws_credentials() if credentials else contextlib.nullcontext()
    moto = MotoServer(port=moto_port or None)
    with credentials_set:
        try:
            await anyio.to_thread.run_sync(moto.start)
            runtime = LocalLambda(sqs_endpoint_url=moto.endpoint_url, port=port)
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
    """What a stack file declares, validated (paths made absolute)."""

    queues: list[dict[str, Any]] = field(default_factory=list)
    functions: list[FunctionConfig] = field(default_factory=list)
    event_invoke: dict[str, EventInvokeConfig] = field(default_factory=dict)
    mappings: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> StackFile:
        """Read and check the file at ``path`` (:class:`UsageError` says what is wrong)."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"cannot read the stack file {path}: {exc}") from exc
        unknown = set(data) - {"queue", "function", "event_source_mapping"}
        if unknown:
            raise UsageError(f"{path}: unknown tables {sorted(unknown)}")
        stack_file = cls(queues=list(data.get("queue", [])))
        for entry in data.get("function", []):
            stack_file._add_function(dict(entry), path.parent)
        stack_file.mappings.extend(dict(m) for m in data.get("event_source_mapping", []))
        return stack_file

    def _add_function(self, entry: dict[str, Any], base: Path) -> None:
        invoke = entry.pop("event_invoke_config", None)
        paths = entry.pop("code_paths", None) or [entry.pop("code_path", ".")]
        entry["code_paths"] = [str((base / p).resolve()) for p in paths]
        try:
            config = FunctionConfig(**entry)
        except TypeError as exc:
            raise UsageError(f"function {entry.get('name')!r}: {exc}") from exc
        self.functions.append(config)
        if invoke is not None:
            self.event_invoke[config.name] = _event_invoke(dict(invoke))

    async def apply(self, aws: LocalAws) -> None:
        """Create the queues, register the functions and configs, start the mappings."""
        urls = {
            q["name"]: await aws.create_queue(q["name"], **q.get("attributes", {}))
            for q in self.queues
        }
        for config in self.functions:
            aws.add_function(config)
        for name, invoke in self.event_invoke.items():
            aws.runtime.functions.get(name).settings[KEY] = invoke
        for entry in self.mappings:
            await aws.add_event_source(_mapping(dict(entry), urls))


def _event_invoke(entry: dict[str, Any]) -> EventInvokeConfig:
    for destination in ("on_success", "on_failure"):
        name = entry.get(destination)
        if name is not None and not name.startswith("arn:"):
            entry[destination] = queue_arn(name)
    try:
        return EventInvokeConfig(**entry)
    except TypeError as exc:
        raise UsageError(f"event_invoke_config: {exc}") from exc


def _mapping(entry: dict[str, Any], urls: dict[str, str]) -> EventSourceMapping:
    queue = entry.pop("queue")
    if queue not in urls:
        raise UsageError(f"event_source_mapping: the queue {queue!r} is not a [[queue]] here")
    if "maximum_concurrency" in entry:
        entry["pollers"] = entry.pop("maximum_concurrency")
    try:
        return EventSourceMapping(urls[queue], **entry)
    except TypeError as exc:
        raise UsageError(f"event_source_mapping: {exc}") from exc
