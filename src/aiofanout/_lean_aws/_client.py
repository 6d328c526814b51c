"""One signed HTTP call to an AWS service, answering as botocore answers.

botocore's request pipeline (serializers, event hooks, endpoint rules, response parsers) costs
about 0.5 ms of CPU per call, four times the HTTP itself: the ceiling of an orchestrator. The
lean client keeps what botocore decides once per client (the endpoint, the region, the signing
name, the credential chain: it builds one botocore client to read them) and does per call only
what a call needs: sign (``_signing``), send and read (``_connection_pool``).

It keeps botocore's contract, so everything above it stays one code path: a service error is a
botocore ``ClientError`` whose ``response`` has the shape botocore parses (``Error.Code``, the
message, ``ResponseMetadata`` with the status and headers, the modelled fields of the body), and
a transport failure is the botocore exception aiobotocore raises for the same failure
(connect errors, read timeouts, a dropped connection).
``aiofanout._aws.translate_botocore_errors`` then turns both into the library's errors exactly
as it does for aioboto3.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import ssl
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._connection_pool import ConnectionPool, request_head
from ._http_connection import (
    ConnectFailed,
    ConnectionDropped,
    ConnectTimedOut,
    ReadTimedOut,
    TransportError,
)
from ._signing import Signer, default_signer

__all__ = ["AwsEndpoint", "LeanClient", "LeanConfig", "resolve_endpoint"]


@dataclass(frozen=True, slots=True)
class AwsEndpoint:
    """Where and as whom one service is called: what botocore resolved for a client of it."""

    url: str
    region: str
    signing_name: str
    credentials: Any  # botocore's Credentials (refreshable ones refresh on each read)
    ssl_context: ssl.SSLContext | None = None  # for https: botocore's CA bundle


def resolve_endpoint(
    service: str, *, endpoint_url: str | None, region_name: str | None
) -> AwsEndpoint:
    """What a botocore client of ``service`` resolves: endpoint, region, credential chain.

    The endpoint as botocore's rules give it (``endpoint_url``, ``AWS_ENDPOINT_URL_*``, FIPS and
    dual-stack when configured); the credentials from its chain (environment, profiles, SSO,
    container and instance metadata), read anew for each client as a new aioboto3 session
    reads them; for https, TLS checked against the CA bundle botocore would use
    (``AWS_CA_BUNDLE`` or ``ca_bundle`` in the profile, else botocore's default). Blocking (it
    may read files and metadata): run it in a thread.
    """
    import botocore.session

    session = botocore.session.get_session()
    key = (service, endpoint_url, region_name, _aws_environment())
    with _resolving:
        where = _resolved.get(key)
    if where is None:
        client = session.create_client(service, endpoint_url=endpoint_url, region_name=region_name)
        meta = client.meta
        where = (meta.endpoint_url, meta.region_name, meta.service_model.signing_name)
        client.close()
        with _resolving:
            if len(_resolved) >= KEPT_ENDPOINTS:
                _resolved.clear()
            _resolved[key] = where
    url, region, signing_name = where
    tls = None
    if url.startswith("https:"):
        tls = _ssl_context(session.get_config_variable("ca_bundle"))
    return AwsEndpoint(url, region, signing_name, session.get_credentials(), tls)


@functools.lru_cache(maxsize=8)
def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """A verifying context for ``ca_bundle`` (botocore's default one if None); ~20 ms, so kept."""
    from botocore.httpsession import get_cert_path

    return ssl.create_default_context(cafile=ca_bundle or get_cert_path(True))


# Building a botocore client costs ~150 ms of CPU (its service model and endpoint rules, loaded
# from JSON): once per endpoint per process, not once per target. The models are let go after
# (25,000 objects that every full garbage collection would walk); a new session for the
# credentials costs ~6 ms. The key holds every AWS_* variable: a changed environment resolves
# anew.
KEPT_ENDPOINTS = 64
_resolved: dict[tuple[object, ...], tuple[str, str, str]] = {}
_resolving = threading.Lock()


def _aws_environment() -> frozenset[tuple[str, str]]:
    return frozenset((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))


@dataclass(frozen=True, slots=True)
class LeanConfig:
    """A lean client's settings, under botocore's ``Config`` names (``client.meta.config``)."""

    max_pool_connections: int
    read_timeout: float
    connect_timeout: float


#: Sent unsigned, as botocore sends its own (a proxy may rewrite it): AWS's logs name the caller.
USER_AGENT = "aiofanout-lean (python)"


class LeanClient:
    """Signed calls to one service, on a pool of at most ``pool`` kept-alive connections.

    ``read_timeout`` and ``connect_timeout`` are botocore's (see ``aiofanout._aws``); nothing is
    retried here, as botocore's own retries are off on the aioboto3 path.
    """

    def __init__(
        self,
        endpoint: AwsEndpoint,
        *,
        pool: int,
        read_timeout: float,
        connect_timeout: float,
        signer: Signer | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.config = LeanConfig(pool, read_timeout, connect_timeout)
        self.signer = signer or default_signer(endpoint.signing_name, endpoint.region)
        split = urllib.parse.urlsplit(endpoint.url)
        self._base = endpoint.url.rstrip("/")
        self._host = split.netloc.rpartition("@")[2]
        self._prefix = split.path.rstrip("/")  # an endpoint_url with a path keeps it
        self._connections = ConnectionPool(
            endpoint.url,
            limit=pool,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            ssl_context=endpoint.ssl_context,
        )

    async def close(self) -> None:
        """Close the connections."""
        await self._connections.close()

    async def __aenter__(self) -> LeanClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def call(
        self, operation: str, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Sign and send one request; its status, headers (lower case) and body.

        A status of 300 or more raises botocore's ``ClientError`` for ``operation``.
        """
        url = self._base + path
        credentials = await self._frozen_credentials()
        signed = self.signer.sign(method, url, {"host": self._host, **headers}, body, credentials)
        signed["user-agent"] = USER_AGENT
        try:
            head = request_head(method, self._prefix + path, self._host, signed, len(body))
        except ValueError as exc:  # as botocore refuses what it cannot send
            from botocore.exceptions import ParamValidationError

            raise ParamValidationError(report=str(exc)) from exc
        try:
            status, answer_headers, answer = await self._connections.request(head, body)
        except TransportError as exc:
            raise botocore_transport_error(exc, url) from exc
        if status >= 300:
            raise client_error(operation, status, answer_headers, answer)
        return status, answer_headers, answer

    async def _frozen_credentials(self) -> Any:
        """The credentials for this call, read anew: refreshable ones refresh when due.

        botocore refreshes synchronously (STS, SSO, container or instance metadata), so a
        refresh runs in a thread, not on the loop.
        """
        credentials = self.endpoint.credentials
        if credentials is None:
            from botocore.exceptions import NoCredentialsError

            raise NoCredentialsError()
        refresh_needed = getattr(credentials, "refresh_needed", None)
        if refresh_needed is not None and refresh_needed():
            return await asyncio.to_thread(credentials.get_frozen_credentials)
        return credentials.get_frozen_credentials()


def client_error(operation: str, status: int, headers: dict[str, str], body: bytes) -> Exception:
    """The botocore ``ClientError`` for an error answer, its ``response`` parsed as botocore does.

    The code comes from ``x-amzn-query-error`` (SQS answers the query-protocol codes there),
    ``x-amzn-errortype`` (Lambda) or the body's ``__type`` / ``code``; the body's other fields
    (``Reason``, ``Type``) ride along at the top, as botocore puts a modelled error's members.
    """
    from botocore.exceptions import ClientError

    fields = _json_object(body)
    code = str(
        headers.get("x-amzn-errortype")
        or fields.get("__type")
        or fields.get("code")
        or fields.get("Code")
        or status
    )
    code = code.split(":", 1)[0].rsplit("#", 1)[-1]
    query_error = headers.get("x-amzn-query-error", "").split(";")
    if len(query_error) == 2 and query_error[0]:
        code = query_error[0]
    message = str(fields.get("message") or fields.get("Message") or "")
    response: dict[str, Any] = {
        key: value for key, value in fields.items() if key not in ("__type", "message")
    }
    response["Error"] = {"Code": code, "Message": message}
    response["ResponseMetadata"] = metadata(status, headers)
    error: Exception = ClientError(response, operation)
    return error


def metadata(status: int, headers: dict[str, str]) -> dict[str, Any]:
    """The ``ResponseMetadata`` botocore gives every answer."""
    return {
        "RequestId": headers.get("x-amzn-requestid") or headers.get("x-amz-request-id", ""),
        "HTTPStatusCode": status,
        "HTTPHeaders": headers,
        "RetryAttempts": 0,
    }


def botocore_transport_error(exc: TransportError, url: str) -> Exception:
    """The botocore exception aiobotocore raises for this failure (its own mapping of aiohttp's)."""
    from botocore import exceptions as bce

    kinds: dict[type[TransportError], Any] = {
        ConnectTimedOut: bce.ConnectTimeoutError,
        ConnectFailed: bce.EndpointConnectionError,
        ReadTimedOut: bce.ReadTimeoutError,
        ConnectionDropped: bce.ConnectionClosedError,
    }
    kind = kinds.get(type(exc), bce.HTTPClientError)
    error: Exception = (
        kind(error=exc) if kind is bce.HTTPClientError else kind(endpoint_url=url, error=exc)
    )
    return error


def _json_object(body: bytes) -> dict[str, Any]:
    """The error body's fields; one that is not JSON is the message, as botocore takes it."""
    try:
        value = json.loads(body) if body else {}
    except ValueError:
        return {"message": body.decode(errors="replace")}
    return value if isinstance(value, dict) else {}
