"""``TaskRecords``: a record per task run in a DynamoDB table, keyed by the envelope's id.

What django-lambda-tasks' ``TaskRecord`` and Zappa's response ids give their users: the sender's
outcome of every remote item names its envelope (``Outcome.envelope_id``), and that id finds how
its run went, later and from anywhere::

    partition key   pk            S   the envelope's id
    attributes      task          S   the task's name
                    app           S   the worker app's name
                    status        S   running | succeeded | failed
                    started_ms    N   epoch ms the run started
                    ended_ms      N   epoch ms it ended (succeeded and failed only)
                    value         S   the value's JSON, when it fits in the item
                    value_bytes   N   the size of that JSON (kept or not)
                    error_type    S   the exception's class name (failed only)
                    error_message S   its message, cut to 4 KiB (failed only)
                    ttl           N   epoch seconds, DynamoDB's TTL attribute (default a week)

A record never holds the task's arguments, the envelope or the app's secret: only what the run
gave back. The schema is the idempotency table's (``pk``, TTL on ``ttl``), so one stack part
makes either. Each run writes twice (``PutItem`` when it starts and when it ends); a write that
fails is logged and the task runs on: a record is a view of the work, never a reason to fail it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from .._errors import FanoutError, UsageError
from .._log_fields import library_logger
from .._wire import TaskEnvelope, now_ms
from ._keyed_table import TTL_ATTRIBUTE, KeyedTable

__all__ = ["TaskRecord", "TaskRecords"]

log = library_logger("aiofanout.worker")

RecordStatus = Literal["running", "succeeded", "failed"]
#: DynamoDB's item limit is 400 KB; a value's JSON is kept below this, the rest is room.
MAX_VALUE_BYTES = 350_000
MAX_MESSAGE_CHARS = 4096
DEFAULT_RECORD_TTL = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """How one run of a task went, as :class:`TaskRecords` keeps it.

    ``value`` is what the task returned when its JSON fit in the record (``value_kept``);
    ``error_type`` and ``error_message`` say why a failed run failed. Times are UTC.

    Example::

        record = await TaskRecords("task-records").get(outcome.envelope_id)
        if record is not None and record.status == "failed":
            print(record.task, record.error_type, record.error_message)
    """

    envelope_id: str
    task: str
    app: str
    status: RecordStatus
    started_at: datetime
    ended_at: datetime | None
    expires_at: datetime
    value: Any = None
    value_kept: bool = False
    value_bytes: int | None = None
    error_type: str | None = None
    error_message: str | None = None

    @property
    def done(self) -> bool:
        """Whether the run has ended (succeeded or failed)."""
        return self.status != "running"


class TaskRecords:
    """Where an :class:`App` writes a record per task run: a DynamoDB table (moto locally).

    Args:
        table_name: the table; created on first use (on-demand, TTL on ``ttl``) unless
            ``create_table=False``.
        ttl: how long a record is kept (a ``timedelta`` or seconds; default a week).
        endpoint_url: another endpoint than AWS's (the local stack's moto server).
        region_name: the table's region (default: the environment's).

    The client opens on first use on the running loop; the app closes it with its loop (or
    use the object as an async context manager). A lone :meth:`get` opens and closes its own.

    Example::

        app = App("worker", records=TaskRecords("task-records"))

        # later, anywhere: the sender's outcome names the envelope
        record = await TaskRecords("task-records").get(outcome.envelope_id)
        print(record.status, record.started_at, record.value)

    """

    def __init__(
        self,
        table_name: str,
        *,
        ttl: timedelta | float = DEFAULT_RECORD_TTL,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        create_table: bool = True,
    ) -> None:
        if not table_name:
            raise UsageError("TaskRecords(table_name) needs a table name")
        seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise UsageError(f"TaskRecords(ttl=...) is a timedelta or seconds > 0, got {ttl!r}")
        self.table_name = table_name
        self.ttl = float(seconds)
        self.endpoint_url = endpoint_url
        self.region_name = region_name
        self._table = KeyedTable(
            table_name,
            purpose="task records",
            owner="TaskRecords",
            endpoint_url=endpoint_url,
            region_name=region_name,
            create=create_table,
        )

    def __repr__(self) -> str:
        return f"<TaskRecords table={self.table_name!r} ttl={self.ttl:g}s>"

    async def __aenter__(self) -> TaskRecords:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- what a worker writes --------------------------------------------------------------

    async def started(self, app: str, envelope: TaskEnvelope) -> int:
        """Write the run's ``running`` record; return when it started (epoch ms)."""
        started = now_ms()
        await self._put(self._item(app, envelope, "running", started))
        return started

    async def succeeded(self, app: str, envelope: TaskEnvelope, started: int, value: Any) -> None:
        """Write the run's ``succeeded`` record, with its value when it fits."""
        item = self._item(app, envelope, "succeeded", started, ended=now_ms())
        encoded = json.dumps(value, separators=(",", ":"))
        item["value_bytes"] = {"N": str(len(encoded.encode()))}
        if len(encoded.encode()) <= MAX_VALUE_BYTES:
            item["value"] = {"S": encoded}
        await self._put(item)

    async def failed(
        self, app: str, envelope: TaskEnvelope, started: int, error: BaseException
    ) -> None:
        """Write the run's ``failed`` record: the error's type and message."""
        item = self._item(app, envelope, "failed", started, ended=now_ms())
        item["error_type"] = {"S": type(error).__name__}
        item["error_message"] = {"S": str(error)[:MAX_MESSAGE_CHARS] or "-"}
        await self._put(item)

    def _item(
        self,
        app: str,
        envelope: TaskEnvelope,
        status: RecordStatus,
        started: int,
        *,
        ended: int | None = None,
    ) -> dict[str, Any]:
        item = {
            "pk": {"S": envelope.id},
            "task": {"S": envelope.task},
            "app": {"S": app},
            "status": {"S": status},
            "started_ms": {"N": str(started)},
            TTL_ATTRIBUTE: {"N": str(int(started / 1000 + self.ttl))},
        }
        if ended is not None:
            item["ended_ms"] = {"N": str(ended)}
        return item

    async def _put(self, item: dict[str, Any]) -> None:
        try:
            client = await self._table.client()
            with self._table.translated():
                await client.put_item(TableName=self.table_name, Item=item)
        except FanoutError as exc:
            log.warning(
                "task record %s (%s) not written to table %s: %s",
                item["pk"]["S"],
                item["status"]["S"],
                self.table_name,
                exc,
            )

    # -- what anyone reads -----------------------------------------------------------------

    async def get(self, envelope_id: str) -> TaskRecord | None:
        """The record of the run of envelope ``envelope_id``; ``None`` if there is none.

        Raises :class:`~aiofanout.ServiceError` naming the table when it cannot be read (its
        ``code`` says why: ``ResourceNotFoundException`` for a table that does not exist), or
        :class:`~aiofanout.errors.ConnectError` when DynamoDB cannot be reached.
        """
        async with self._table.client_for_a_call() as client:
            with self._table.translated():
                answer = await client.get_item(
                    TableName=self.table_name, Key={"pk": {"S": envelope_id}}, ConsistentRead=True
                )
        item = answer.get("Item")
        return None if item is None else _record(item)

    async def aclose(self) -> None:
        """Close the client (opened again on the next write)."""
        await self._table.aclose()


def _record(item: dict[str, Any]) -> TaskRecord:
    def text(name: str) -> str | None:
        value = item.get(name, {}).get("S")
        return None if value is None else str(value)

    def number(name: str) -> int | None:
        value = item.get(name, {}).get("N")
        return None if value is None else int(value)

    started = number("started_ms") or 0
    ended = number("ended_ms")
    value_json = text("value")
    return TaskRecord(
        envelope_id=str(item["pk"]["S"]),
        task=text("task") or "",
        app=text("app") or "",
        status=cast(RecordStatus, text("status")),
        started_at=_utc(started),
        ended_at=None if ended is None else _utc(ended),
        expires_at=datetime.fromtimestamp(number(TTL_ATTRIBUTE) or 0, UTC),
        value=None if value_json is None else json.loads(value_json),
        value_kept=value_json is not None,
        value_bytes=number("value_bytes"),
        error_type=text("error_type"),
        error_message=text("error_message"),
    )


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
