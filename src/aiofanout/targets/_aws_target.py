"""The AWS targets' base: a client of one service, made from the one AWS core and sized to the caps.

The client's settings and the error translation are the core's (``aiofanout._aws``); here is what
a target adds: one client shared by the fan-outs open at once (``SharedTarget``), a user's own
client used as it is (with a warning when its pool is under the cap), and the reply queue's own
SQS client.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from .._aws import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT_SLACK,
    aws_session,
    check_endpoint_url,
    client_config,
    client_timeouts,
    no_region_error,
)
from .._lean_aws import lean_client, lean_path_on
from ._shared import SharedTarget

__all__ = ["AwsClientTarget", "sqs_client_maker"]


def sqs_client_maker(
    *, session: Any, endpoint_url: str | None, region_name: str | None, pool: int, wait: float
) -> Callable[[], Awaitable[tuple[Any, Callable[[], Awaitable[object]]]]]:
    """How a reply queue makes its own SQS client: ``pool`` connections, polls of ``wait`` s.

    On aioboto3, botocore may retry these calls itself (a receive or a delete is safe to send
    again); on the lean path a failed receive is tried again by the receiver after a pause.
    """

    async def make() -> tuple[Any, Callable[[], Awaitable[object]]]:
        client = await _aioboto3_client(session, endpoint_url, region_name, pool, wait)
        if session is not None or not lean_path_on("sqs", endpoint_url):
            return client, client.close
        # Receives and deletes go the lean way; creating and deleting the queue through aioboto3.
        try:
            lean = await lean_client(
                "sqs",
                endpoint_url=endpoint_url,
                region_name=region_name,
                pool=pool,
                read_timeout=wait + READ_TIMEOUT_SLACK,
                connect_timeout=CONNECT_TIMEOUT,
                fallback=client,
            )
        except BaseException:
            await client.close()
            raise
        return lean, lean.close

    return make


async def _aioboto3_client(
    session: Any, endpoint_url: str | None, region_name: str | None, pool: int, wait: float
) -> Any:
    from aiobotocore.config import AioConfig

    config = AioConfig(
        max_pool_connections=pool,
        read_timeout=wait + READ_TIMEOUT_SLACK,
        connect_timeout=CONNECT_TIMEOUT,
        tcp_keepalive=True,
    )
    factory = aws_session(session, "replies=").client(
        "sqs", endpoint_url=endpoint_url, region_name=region_name, config=config
    )
    return await factory.__aenter__()


class AwsClientTarget(SharedTarget[Any]):
    """A target that calls one AWS service through an aiobotocore client it makes and sizes.

    With ``client=``, that client is used as it is (and not closed; a warning says when its pool
    is under the cap); with ``session=``, clients are made from it; otherwise the calls take the
    lean path (``aiofanout._lean_aws``) where the service has one, else a new
    ``aioboto3.Session()``'s client.
    """

    service: str = ""
    long_calls = False

    def __init__(
        self,
        *,
        session: Any = None,
        client: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
    ) -> None:
        self._session = session
        self._given_client = client
        self.endpoint_url = check_endpoint_url(endpoint_url)
        self.region_name = region_name

    @property
    def client(self) -> Any:
        """The client new calls go to (``UsageError`` when the target is not open)."""
        with self.lease() as client:
            return client

    async def acquire(self, *, concurrency: int, timeout: float | None) -> Any:
        if self._given_client is not None:
            _warn_if_pool_too_small(self._given_client, concurrency)
            return self._given_client
        from botocore.exceptions import NoRegionError

        try:
            if self._session is None and lean_path_on(self.service, self.endpoint_url):
                return await self._lean_client(concurrency, timeout)
            session = aws_session(self._session, "the AWS targets")
            config = client_config(
                concurrency=concurrency, timeout=timeout, long_calls=self.long_calls
            )
            # The context manager's enter makes the client; its exit is client.close(), in
            # release().
            return await session.client(
                self.service,
                endpoint_url=self.endpoint_url,
                region_name=self.region_name,
                config=config,
            ).__aenter__()
        except NoRegionError as exc:
            raise no_region_error(self.service, exc) from exc

    async def _lean_client(self, concurrency: int, timeout: float | None) -> Any:
        read_timeout, connect_timeout = client_timeouts(timeout=timeout, long_calls=self.long_calls)
        return await lean_client(
            self.service,
            endpoint_url=self.endpoint_url,
            region_name=self.region_name,
            pool=concurrency,
            read_timeout=read_timeout,
            connect_timeout=connect_timeout,
        )

    async def release(self, resource: Any) -> None:
        if resource is not self._given_client:  # the user's own client is theirs to close
            await resource.close()


def _warn_if_pool_too_small(client: Any, concurrency: int) -> None:
    pool = getattr(getattr(client, "meta", None), "config", None)
    size = getattr(pool, "max_pool_connections", None)
    if isinstance(size, int) and size < concurrency:
        warnings.warn(
            f"the client's max_pool_connections is {size}, under the fan-out's concurrency of "
            f"{concurrency}: only {size} calls can be in flight. Build the client with "
            f"AioConfig(max_pool_connections={concurrency}), or let the target make its own",
            UserWarning,
            stacklevel=5,
        )
