"""The lean path to Lambda and SQS: the hot calls over aiohttp, signed by AWS's own signer.

What it covers: Lambda ``Invoke`` (all three types), SQS ``SendMessageBatch``, ``SendMessage``,
``ReceiveMessage`` and ``DeleteMessageBatch``: the calls a fan-out makes once per item or batch,
for ``LambdaTarget``, ``SqsTarget``, the reply queue's receivers and the worker's reply sends.
Everything else (creating and deleting a reply queue, claims in S3, the control plane) stays on
aioboto3. A target given ``client=`` or ``session=`` uses aioboto3 for everything, and
``AIOFANOUT_AWS_CLIENT=aioboto3`` in the environment turns the lean path off everywhere.

Measured on a zero-latency stub (``benchmarks/aws.py``), botocore's pipeline costs about four
times what the HTTP call does; this path keeps botocore's decisions (endpoint, region, the
credential chain) and its error contract, and drops the pipeline.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ._client import AwsEndpoint, LeanClient, resolve_endpoint
from ._services import LeanLambda, LeanSqs
from ._signing import BotocoreSigner, CrtSigner, Signer, default_signer

__all__ = [
    "CLIENT_SWITCH",
    "AwsEndpoint",
    "BotocoreSigner",
    "CrtSigner",
    "LeanClient",
    "LeanLambda",
    "LeanSqs",
    "Signer",
    "default_signer",
    "lean_client",
    "lean_path_on",
    "resolve_endpoint",
]

#: The environment variable that turns the lean path off (``aioboto3``) without a code change.
CLIENT_SWITCH = "AIOFANOUT_AWS_CLIENT"
_SERVICES: dict[str, type[LeanLambda] | type[LeanSqs]] = {"lambda": LeanLambda, "sqs": LeanSqs}


def lean_path_on(service: str) -> bool:
    """Whether calls to ``service`` take the lean path (not when the switch says ``aioboto3``)."""
    return service in _SERVICES and os.environ.get(CLIENT_SWITCH, "lean") != "aioboto3"


async def lean_client(
    service: str,
    *,
    endpoint_url: str | None,
    region_name: str | None,
    pool: int,
    read_timeout: float,
    connect_timeout: float,
    fallback: Any = None,
) -> Any:
    """A lean ``LeanLambda`` or ``LeanSqs`` client, resolved as botocore resolves one.

    Raises botocore's ``NoRegionError`` when no region is configured, as a client would.
    """
    endpoint = await asyncio.to_thread(
        resolve_endpoint, service, endpoint_url=endpoint_url, region_name=region_name
    )
    client = LeanClient(
        endpoint, pool=pool, read_timeout=read_timeout, connect_timeout=connect_timeout
    )
    return _SERVICES[service](client, fallback=fallback)
