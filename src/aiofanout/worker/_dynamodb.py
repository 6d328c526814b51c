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

import contextlib
from typing import Any

from .._errors import ServiceError, UsageError
from .._log_fields import library_logger
from .._wire import now_ms
from ._idempotency import DEFAULT_TTL, Record, Status, check_ttl
from ._keyed_table import TABLE_SCHEMA, TTL_ATTRIBUTE, KeyedTable

__all__ = ["TABLE_SCHEMA", "TTL_ATTRIBUTE", "DynamoDBStore"]

log = library_logger("aiofanout.worker")

_CLAIM_CONDITION = "attribute_not_exists(pk) OR expires_at_ms < :now"
_CLAIM_ATTEMPTS = 3
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
        self._table = KeyedTable(
            table,
            purpose="idempotency",
            owner="DynamoDBStore",
            endpoint_url=endpoint_url,
            region_name=region_name,
            create=create_table,
        )

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
        with self._table.translated():
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
        with self._table.translated():
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
            self._table.translated(),
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
        await self._table.aclose()

    async def _ready_client(self) -> Any:
        return await self._table.client()

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
