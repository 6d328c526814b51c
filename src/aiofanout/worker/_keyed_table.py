"""A DynamoDB table keyed by ``pk``, expired by ``ttl``, and its one client per event loop.

What the idempotency store (``DynamoDBStore``) and the task records (``TaskRecords``) share:
the schema (one string key ``pk``, on-demand, DynamoDB's TTL on ``ttl``), which the deploy
template and the local stack make too; a client opened on first use on the running loop (a new
loop, ``loop="fresh"`` or a test, gets a new one: the old client died with its loop) and
closed by :meth:`KeyedTable.aclose`; the table created then unless told not to; and errors
translated once, naming the table and what it is for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from .._aws import aioboto3_module, translate_botocore_errors
from .._errors import ConnectError, FanoutError, ServiceError, TransportError
from .._log_fields import library_logger

__all__ = ["TABLE_SCHEMA", "TTL_ATTRIBUTE", "KeyedTable"]

log = library_logger("aiofanout.worker")

#: The table as the stores need it; the deploy template and the local stack make the same one.
TABLE_SCHEMA: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    "BillingMode": "PAY_PER_REQUEST",
}
TTL_ATTRIBUTE = "ttl"  # DynamoDB's TTL deletes items whose "ttl" (epoch seconds) has passed


class KeyedTable:
    """One table of :data:`TABLE_SCHEMA` and its client.

    ``purpose`` names the table in errors and logs (``idempotency``), ``owner`` the class that
    needs the ``aws`` extra when aioboto3 is missing (``DynamoDBStore``).
    """

    def __init__(
        self,
        name: str,
        *,
        purpose: str,
        owner: str,
        endpoint_url: str | None,
        region_name: str | None,
        create: bool,
    ) -> None:
        self.name = name
        self.purpose = purpose  # "idempotency", "task records"
        self.owner = owner
        self.endpoint_url = endpoint_url
        self.region_name = region_name
        self._ready = not create
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening = asyncio.Lock()
        self._resources = contextlib.AsyncExitStack()
        self._client: Any = None

    @property
    def is_open(self) -> bool:
        """Whether a client is open (on the loop that opened it)."""
        return self._client is not None

    async def client(self) -> Any:
        """The client of this loop, opened (and the table made) on first use."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._client = loop, None
            self._opening = asyncio.Lock()
            self._resources = contextlib.AsyncExitStack()
        if self._client is None:
            async with self._opening:
                if self._client is None:
                    with self.translated():
                        client = await self._resources.enter_async_context(self._new_client())
                    if not self._ready:
                        await self._ensure(client)
                    self._client = client
        return self._client

    @contextlib.asynccontextmanager
    async def client_for_a_call(self) -> AsyncIterator[Any]:
        """The open client of this loop, or one for this call alone (closed after it)."""
        if self.is_open and self._loop is asyncio.get_running_loop():
            yield self._client
            return
        with self.translated():
            async with self._new_client() as client:
                yield client

    async def aclose(self) -> None:
        """Close the client (opened again on the next use)."""
        resources, self._resources = self._resources, contextlib.AsyncExitStack()
        self._client = None
        self._loop = None
        await resources.aclose()

    @contextlib.contextmanager
    def translated(self) -> Iterator[None]:
        """The AWS core's translation, naming the table: a table that cannot answer is retryable."""
        where = f"{self.purpose} table {self.name!r}"
        try:
            with translate_botocore_errors(ambiguous_retryable=True):
                yield
        except TransportError as exc:
            raise ConnectError(f"{where}: {exc.message}") from exc
        except FanoutError as exc:
            code = getattr(exc, "code", None)
            raise ServiceError(f"{where}: {exc.message}", code=code, retryable=True) from exc

    def _new_client(self) -> Any:
        session = aioboto3_module(self.owner).Session(region_name=self.region_name)
        from botocore.config import Config  # (botocore comes with aioboto3)

        config = Config(retries={"mode": "standard", "max_attempts": 3})
        return session.client("dynamodb", endpoint_url=self.endpoint_url, config=config)

    async def _ensure(self, client: Any) -> None:
        with self.translated():
            try:
                await client.describe_table(TableName=self.name)
            except client.exceptions.ResourceNotFoundException:
                await self._create(client)
        self._ready = True

    async def _create(self, client: Any) -> None:
        log.info("creating the %s table %s", self.purpose, self.name)
        with contextlib.suppress(client.exceptions.ResourceInUseException):  # a racing creator
            await client.create_table(TableName=self.name, **TABLE_SCHEMA)
        waiter = client.get_waiter("table_exists")
        await waiter.wait(TableName=self.name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        await client.update_time_to_live(
            TableName=self.name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
