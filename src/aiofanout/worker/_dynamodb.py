"""``DynamoDBStore``: idempotency records in a DynamoDB table, through aioboto3.

The table (created on first use unless ``create_table=False``)::

    partition key   pk             S   the call's key, hashed (``store_key``: "v2:<sha256>")
    attributes      status         S   IN_PROGRESS | COMPLETED
                    owner          S   the id of the run that holds the key
                    expires_at_ms  N   epoch ms: the claim's end, or the stored reply's
                    reply          S   the reply envelope's JSON (COMPLETED only)
                    arguments      S   a short hash per argument the key was claimed with
                    ttl            N   epoch seconds, DynamoDB's TTL attribute (cleans up)
    billing         PAY_PER_REQUEST

Every call reads or writes one item by its key; nothing scans. The claim is one ``PutItem``
with ``attribute_not_exists(pk) OR expires_at_ms < :now``; DynamoDB serializes the writes of
one item, so two racing claims cannot both succeed. The failed write returns the item that
stopped it (``ReturnValuesOnConditionCheckFailure``), so a loser learns the holder without a
read, and a claim whose first attempt succeeded but whose answer was lost (botocore retried it)
recognises its own ``owner``. Expiry is judged by the worker's clock: keep worker clocks in sync
(they are on Lambda). TTL deletion lags by up to days; the conditions never rely on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from .._aws import aioboto3_module, translate_botocore_errors
from .._errors import ConnectError, FanoutError, ServiceError, TransportError, UsageError
from .._wire import now_ms
from ._idempotency import DEFAULT_TTL, Record, Status, check_ttl

log = logging.getLogger("aiofanout.worker")

_CLAIM_CONDITION = "attribute_not_exists(pk) OR expires_at_ms < :now"
_CLAIM_ATTEMPTS = 3
#: The table as this store needs it; the deploy template and the local stack make the same one.
TABLE_SCHEMA: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    "BillingMode": "PAY_PER_REQUEST",
}
TTL_ATTRIBUTE = "ttl"  # DynamoDB's TTL deletes items whose "ttl" (epoch seconds) has passed
_NAMES = {"#status": "status", "#owner": "owner", "#ttl": "ttl", "#reply": "reply"}


class DynamoDBStore:
    """An idempotency store in a DynamoDB table (moto's DynamoDB in the local stack).

    Args:
        table: the table's name; created on first use (on-demand billing, TTL on ``ttl``)
            unless ``create_table=False``.
        ttl: seconds a completed reply is kept and handed to duplicates (default one day).
        endpoint_url: another endpoint than AWS's (the local stack's moto server).
        region_name: the table's region (default: the environment's).
        create_table: create the table if it does not exist.

    The client opens on first use on the running loop and closes with :meth:`aclose` (the
    worker's loop runner calls it at the end of the execution environment), or use the store
    as an async context manager.

    Example::

        app = App("orders", idempotency=DynamoDBStore(table="orders-idempotency", ttl=3600))

        @app.task(idempotent=True, key=lambda order: order["id"])
        async def charge(order: dict) -> str: ...

    """

    def __init__(
        self,
        *,
        table: str,
        ttl: float = DEFAULT_TTL,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        create_table: bool = True,
    ) -> None:
        check_ttl(ttl)
        if not table:
            raise UsageError("DynamoDBStore(table=...) needs a table name")
        self.table = table
        self.ttl = ttl
        self.endpoint_url = endpoint_url
        self.region_name = region_name
        self.create_table = create_table
        self._table_ready = not create_table
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening = asyncio.Lock()
        self._resources = contextlib.AsyncExitStack()
        self._client: Any = None

    def __repr__(self) -> str:
        return f"<DynamoDBStore table={self.table!r} ttl={self.ttl:g}s>"

    async def __aenter__(self) -> DynamoDBStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the store protocol -------------------------------------------------------------------

    async def claim(
        self, key: str, *, owner: str, expires_at_ms: int, arguments: str
    ) -> Record | None:
        client = await self._ready_client()
        for _ in range(_CLAIM_ATTEMPTS):
            held = await self._put_if_free(client, key, owner, expires_at_ms, arguments)
            if held is None:
                return None
            if held:
                record = _record(held)
                # Our own owner: the write went through and botocore retried it after a lost
                # answer. Anything else holds the key.
                return None if record.owner == owner else record
            # The holder was released between our write and our read: try again.
        raise ServiceError(f"idempotency key {key!r} changed hands too often", retryable=True)

    async def _put_if_free(
        self, client: Any, key: str, owner: str, expires_at_ms: int, arguments: str
    ) -> dict[str, Any] | None:
        """``None`` if the claim was written, else the item that stopped it (``{}``: gone)."""
        item = {
            "pk": {"S": key},
            "status": {"S": "IN_PROGRESS"},
            "owner": {"S": owner},
            "expires_at_ms": {"N": str(expires_at_ms)},
            "ttl": {"N": str(expires_at_ms // 1000 + 1)},
            "arguments": {"S": arguments},
        }
        with _translated(self.table):
            try:
                await client.put_item(
                    TableName=self.table,
                    Item=item,
                    ConditionExpression=_CLAIM_CONDITION,
                    ExpressionAttributeValues={":now": {"N": str(now_ms())}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except client.exceptions.ConditionalCheckFailedException as exc:
                held: dict[str, Any] | None = exc.response.get("Item")
                return held or await self._read(client, key) or {}
        return None

    async def complete(self, key: str, *, owner: str, reply: str, expires_at_ms: int) -> bool:
        client = await self._ready_client()
        with _translated(self.table):
            try:
                await client.update_item(
                    TableName=self.table,
                    Key={"pk": {"S": key}},
                    UpdateExpression=(
                        "SET #status = :done, #reply = :reply, expires_at_ms = :exp, #ttl = :ttl"
                    ),
                    ConditionExpression="#owner = :owner",
                    ExpressionAttributeNames=_NAMES,
                    ExpressionAttributeValues={
                        ":done": {"S": "COMPLETED"},
                        ":reply": {"S": reply},
                        ":exp": {"N": str(expires_at_ms)},
                        ":ttl": {"N": str(expires_at_ms // 1000 + 1)},
                        ":owner": {"S": owner},
                    },
                )
            except client.exceptions.ConditionalCheckFailedException:
                return False
        return True

    async def release(self, key: str, *, owner: str) -> None:
        client = await self._ready_client()
        with (
            _translated(self.table),
            contextlib.suppress(client.exceptions.ConditionalCheckFailedException),
        ):
            await client.delete_item(
                TableName=self.table,
                Key={"pk": {"S": key}},
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )

    async def aclose(self) -> None:
        """Close the client (opened again on the next use)."""
        resources, self._resources = self._resources, contextlib.AsyncExitStack()
        self._client = None
        self._loop = None
        await resources.aclose()

    # -- the client and the table -------------------------------------------------------------

    async def _ready_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A new loop (``loop="fresh"``, or a test): the old client died with its loop.
            self._loop, self._client = loop, None
            self._opening = asyncio.Lock()
            self._resources = contextlib.AsyncExitStack()
        if self._client is None:
            async with self._opening:
                if self._client is None:
                    client = await self._open()
                    if not self._table_ready:
                        await self._ensure_table(client)
                    self._client = client
        return self._client

    async def _open(self) -> Any:
        session = aioboto3_module("DynamoDBStore").Session(region_name=self.region_name)
        from botocore.config import Config  # (botocore comes with aioboto3)

        config = Config(retries={"mode": "standard", "max_attempts": 3})
        client = session.client("dynamodb", endpoint_url=self.endpoint_url, config=config)
        with _translated(self.table):
            return await self._resources.enter_async_context(client)

    async def _ensure_table(self, client: Any) -> None:
        with _translated(self.table):
            try:
                await client.describe_table(TableName=self.table)
            except client.exceptions.ResourceNotFoundException:
                await self._create(client)
        self._table_ready = True

    async def _create(self, client: Any) -> None:
        log.info("creating the idempotency table %s", self.table)
        with contextlib.suppress(client.exceptions.ResourceInUseException):  # a racing creator
            await client.create_table(TableName=self.table, **TABLE_SCHEMA)
        waiter = client.get_waiter("table_exists")
        await waiter.wait(TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        await client.update_time_to_live(
            TableName=self.table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )

    async def _read(self, client: Any, key: str) -> dict[str, Any] | None:
        answer = await client.get_item(
            TableName=self.table, Key={"pk": {"S": key}}, ConsistentRead=True
        )
        item: dict[str, Any] | None = answer.get("Item")
        return item


def _record(item: dict[str, Any]) -> Record:
    status: Status = "COMPLETED" if item["status"]["S"] == "COMPLETED" else "IN_PROGRESS"
    reply = item.get("reply", {}).get("S")
    arguments = item.get("arguments", {}).get("S")
    return Record(status, item["owner"]["S"], int(item["expires_at_ms"]["N"]), reply, arguments)


@contextlib.contextmanager
def _translated(table: str) -> Iterator[None]:
    """The AWS core's translation, naming the table: a store that cannot answer is retryable."""
    try:
        with translate_botocore_errors(ambiguous_retryable=True):
            yield
    except TransportError as exc:
        raise ConnectError(f"idempotency table {table!r}: {exc.message}") from exc
    except FanoutError as exc:
        code = getattr(exc, "code", None)
        raise ServiceError(
            f"idempotency table {table!r}: {exc.message}", code=code, retryable=True
        ) from exc
