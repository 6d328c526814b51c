"""The lean path to Lambda and SQS: the hot calls on kept-alive HTTP/1.1, signed by AWS's signer.

What it covers: Lambda ``Invoke`` (all three types), SQS ``SendMessageBatch``, ``SendMessage``,
``ReceiveMessage`` and ``DeleteMessageBatch``: the calls a fan-out makes once per item or batch,
for ``LambdaTarget``, ``SqsTarget``, the reply queue's receivers and the worker's reply sends.
Everything else (creating and deleting a reply queue, claims in S3, the control plane) stays on
aioboto3. A target given ``client=`` or ``session=`` uses aioboto3 for everything, and
``AIOFANOUT_AWS_CLIENT=aioboto3`` in the environment turns the lean path off everywhere. So does
a proxy in the environment for the endpoint (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``,
unless ``NO_PROXY`` exempts the host): the lean path connects directly; botocore honours proxies.

Measured on a zero-latency stub (``benchmarks/aws.py``), botocore's pipeline costs about four
times what the HTTP call does, and aiohttp's client twice what the call needs; this path keeps
botocore's decisions (endpoint, region, the credential chain, the CA bundle) and its error
contract, and drops the pipeline (``_client``) and the HTTP client's machinery
(``_connection_pool``).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import os
import urllib.parse
import urllib.request
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


def lean_path_on(service: str, endpoint_url: str | None = None) -> bool:
    """Whether calls to ``service`` (at ``endpoint_url``, if given) take the lean path.

    Not when the switch says ``aioboto3``, nor when the environment routes the endpoint
    through a proxy (``HTTPS_PROXY``, ``HTTP_PROXY`` or ``ALL_PROXY``, and ``NO_PROXY`` does not
    exempt its host): the lean path connects directly, and botocore honours the proxy.
    """
    return (
        service in _SERVICES
        and os.environ.get(CLIENT_SWITCH, "lean") != "aioboto3"
        and _parser_installed()
        and not _proxied(service, endpoint_url)
    )


@functools.cache
def _parser_installed() -> bool:
    """Whether httptools imports (the ``aws`` extra brings it; a bare install may lack it)."""
    return importlib.util.find_spec("httptools") is not None


def _proxied(service: str, endpoint_url: str | None) -> bool:
    proxies = urllib.request.getproxies_environment()
    if not proxies:
        return False
    url = (
        endpoint_url
        or os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}")
        or os.environ.get("AWS_ENDPOINT_URL")
        or f"https://{service}.amazonaws.com"
    )
    split = urllib.parse.urlsplit(url)
    if not (proxies.get(split.scheme) or proxies.get("all")):
        return False
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # untyped
    return not bypass(split.hostname or "", proxies)


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
