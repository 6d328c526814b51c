"""The runtime's own SQS client, for event source polling and on-failure destinations."""

from __future__ import annotations

import contextlib
from typing import Any

from ..._aws import aioboto3_module
from ..._errors import UsageError
from .._account import REGION


class SqsClient:
    """An aioboto3 SQS client on the moto server, opened on first use, closed by :meth:`close`."""

    def __init__(self, endpoint_url: str | None) -> None:
        self.endpoint_url = endpoint_url
        self._client: Any = None
        self._stack = contextlib.AsyncExitStack()

    async def get(self) -> Any:
        """The client (opened now if it is the first call)."""
        if self._client is None:
            if self.endpoint_url is None:
                raise UsageError("SQS features need LocalLambda(sqs_endpoint_url=...)")
            from aiobotocore.config import AioConfig

            session = aioboto3_module("the local runtime").Session(region_name=REGION)
            config = AioConfig(max_pool_connections=50, retries={"total_max_attempts": 3})
            self._client = await self._stack.enter_async_context(
                session.client("sqs", endpoint_url=self.endpoint_url, config=config)
            )
        return self._client

    async def close(self) -> None:
        """Close the client if it was opened."""
        await self._stack.aclose()
