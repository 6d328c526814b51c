"""The embedded stack: a moto server (SQS, S3, DynamoDB, IAM, ...) and the local Lambda runtime."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from ._aws import REGION
from ._config import EventSourceMapping, FunctionConfig
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
    import aioboto3

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
                yield LocalAws(
                    endpoint_url=moto.endpoint_url,
                    lambda_endpoint_url=runtime.endpoint_url,
                    session=aioboto3.Session(region_name=REGION),
                    runtime=runtime,
                    moto=moto,
                )
            finally:
                await runtime.stop()
        finally:
            moto.stop()
