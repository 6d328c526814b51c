"""Logs that name the work: fields on every record, from the engine and the worker, as JSON."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

import aiofanout
import aiofanout.logs
from aiofanout import Call, Retry
from aiofanout.testing import LambdaContext, sqs_event, sqs_record
from aiofanout.worker import App

SECRET_ARGUMENT = "sk_live_do-not-log-me-4242"

app = App("logs-worker", secret="signing-key")
task_log = logging.getLogger("tests.logs.task")  # a task's own logger: no filter of its own


@app.task
async def charge(card: str, cents: int) -> str:
    task_log.info("charging %d cents", cents)
    if cents < 0:
        raise ValueError(f"card {card} refused")  # an error that echoes an argument
    return "ok"


own = logging.getLogger("tests.logs.extra")


@app.task
async def tagged(n: int) -> int:
    own.info("tagged", extra={"attempt": 9, "customer_tier": "gold"})
    return n


@app.task
def sync_charge(card: str) -> str:
    task_log.info("charging in a thread")
    return "ok"


class Captured(logging.Handler):
    """Records as the handler of an app that called ``configure`` would see them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.addFilter(aiofanout.logs.ContextFilter())
        self.lines = io.StringIO()
        self.json = logging.StreamHandler(self.lines)
        self.json.setFormatter(aiofanout.logs.JsonFormatter(service="billing"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.json.emit(record)

    def of(self, logger: str) -> list[logging.LogRecord]:
        return [r for r in self.records if r.name == logger]

    def objects(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines.getvalue().splitlines()]


@pytest.fixture
def captured() -> Iterator[Captured]:
    handler = Captured()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        app.runner.close()


# -- the engine ---------------------------------------------------------------------------------


async def test_a_function_logs_its_item_index_and_attempt(captured: Captured) -> None:
    seen: dict[int, int] = {}

    async def flaky(item: int) -> int:
        seen[item] = seen.get(item, 0) + 1
        task_log.info("item %d", item)
        if item == 2 and seen[item] == 1:
            raise ConnectionResetError("once")
        return item

    retry = Retry(attempts=2, base=0, retry_on=(ConnectionResetError,))
    result = await aiofanout.dispatch_many(flaky, range(4), concurrency=2, retry=retry)
    assert result.ok
    logged = [
        (r.getMessage(), vars(r)["item_index"], vars(r)["attempt"])
        for r in captured.of(task_log.name)
    ]
    assert sorted(logged) == [
        ("item 0", 0, 1),
        ("item 1", 1, 1),
        ("item 2", 2, 1),
        ("item 2", 2, 2),
        ("item 3", 3, 1),
    ]


async def test_the_full_path_and_a_sync_function_name_the_item_too(captured: Captured) -> None:
    def work(item: int) -> int:  # a sync function: run in threads, the fields follow
        task_log.info("item %d", item)
        return item

    await aiofanout.dispatch_many(work, range(3), concurrency=2, rate=1000)
    indexes = sorted((r.getMessage(), vars(r)["item_index"]) for r in captured.of(task_log.name))
    assert indexes == [("item 0", 0), ("item 1", 1), ("item 2", 2)]


async def test_outside_a_fan_out_a_record_has_no_fields(captured: Captured) -> None:
    await aiofanout.dispatch_many(lambda x: x, range(2), concurrency=1)
    task_log.info("after")
    (record,) = captured.of(task_log.name)
    assert not hasattr(record, "item_index")
    assert aiofanout.logs.current_fields() == {}


# -- the worker ---------------------------------------------------------------------------------


def invoke(event: Any) -> tuple[Any, LambdaContext]:
    context = LambdaContext(function_name="billing")
    return app.lambda_handler(event, context), context


def test_a_worker_s_records_name_envelope_task_message_and_request(captured: Captured) -> None:
    record = sqs_record(charge.envelope(Call(SECRET_ARGUMENT, 250)), receive_count=3)
    answer, context = invoke({"Records": [record]})
    assert answer == {"batchItemFailures": []}
    expected = {
        "task": "charge",
        "message_id": record["messageId"],
        "attempt": 3,  # the record's third delivery
        "function_request_id": context.aws_request_id,
        "function_name": "billing",
        "function_arn": context.invoked_function_arn,
        "function_memory_size": 128,
    }
    # The task's own logger, and the library's record of the run ("task charge ... ok").
    for logged in (captured.of(task_log.name)[0], captured.of("aiofanout.worker")[0]):
        assert {name: getattr(logged, name) for name in expected} == expected
        assert vars(logged)["envelope_id"] == json.loads(record["body"])["id"]
        assert isinstance(vars(logged)["cold_start"], bool)


def test_the_library_s_records_carry_the_fields_without_any_filter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # caplog's handler has no ContextFilter: the fields come from the library's loggers.
    caplog.set_level(logging.INFO, logger="aiofanout.worker")
    record = sqs_record(charge.envelope(Call("4111", -1)))
    answer, context = invoke({"Records": [record]})
    assert answer == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    failed = next(r for r in caplog.records if "failed" in r.getMessage() and "task" in r.__dict__)
    assert (vars(failed)["task"], vars(failed)["message_id"]) == ("charge", record["messageId"])
    assert vars(failed)["function_request_id"] == context.aws_request_id


def test_a_sync_task_s_logger_sees_the_envelope_from_its_thread(captured: Captured) -> None:
    envelope = sync_charge.envelope(Call("4111"))
    invoke(envelope)
    (logged,) = captured.of(task_log.name)
    assert (vars(logged)["task"], vars(logged)["envelope_id"]) == (
        "sync_charge",
        json.loads(envelope)["id"],
    )


def test_no_argument_or_secret_is_logged(captured: Captured) -> None:
    bad = json.loads(charge.envelope(Call(SECRET_ARGUMENT, 1)))
    bad["sig"] = "0" * 64  # refused: logged as a refusal, still without the arguments
    events = [
        sqs_event([charge.envelope(Call(SECRET_ARGUMENT, 5))]),
        sqs_event([charge.envelope(Call(SECRET_ARGUMENT, -5))]),
        sqs_event([json.dumps(bad)]),
    ]
    for event in events:
        invoke(event)
    text = captured.lines.getvalue()
    assert "refused envelope" in text
    assert "failed: ValueError" in text
    everything = text + "".join(repr(vars(r)) for r in captured.records)
    assert SECRET_ARGUMENT not in everything
    assert "signing-key" not in everything


# -- JSON lines ---------------------------------------------------------------------------------

POWERTOOLS_KEYS = {"level", "location", "message", "timestamp", "service"}


def test_json_lines_have_powertools_keys_and_the_work_s(
    captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
    record = sqs_record(charge.envelope(Call("4111", 7)))
    _, context = invoke({"Records": [record]})
    line = next(o for o in captured.objects() if o["logger"] == task_log.name)
    assert set(line) >= POWERTOOLS_KEYS
    assert line["level"] == "INFO"
    assert line["message"] == "charging 7 cents"
    assert line["location"].startswith("charge:")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\+0000", line["timestamp"])
    assert line["service"] == "billing"
    assert line["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert line["function_request_id"] == context.aws_request_id
    assert line["message_id"] == record["messageId"]
    assert (line["task"], line["function_memory_size"]) == ("charge", 128)
    assert line["cold_start"] in (True, False)


def test_an_exception_is_written_as_powertools_writes_it() -> None:
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(aiofanout.logs.JsonFormatter())
    try:
        raise KeyError("missing")
    except KeyError:
        handler.emit(task_log.makeRecord("t", logging.ERROR, "f", 1, "oops", (), _exc_info()))
    line = json.loads(lines.getvalue())
    assert line["exception_name"] == "KeyError"
    assert "Traceback" in line["exception"]
    assert "missing" in line["exception"]
    assert line["service"] == "service_undefined"  # no $POWERTOOLS_SERVICE_NAME here


def _exc_info() -> Any:
    import sys

    return sys.exc_info()


def test_configure_sends_every_logger_through_one_json_handler() -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        aiofanout.logs.configure(service="svc", stream=stream)
        invoke(charge.envelope(Call("4111", 3)))
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
        app.runner.close()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = next(o for o in lines if o["logger"] == task_log.name)
    library = next(o for o in lines if o["logger"] == "aiofanout.worker")
    assert mine["task"] == library["task"] == "charge"
    assert mine["envelope_id"] == library["envelope_id"]
    assert mine["service"] == "svc"


def test_a_worker_s_own_fan_out_of_a_batch_names_no_item(captured: Captured) -> None:
    # The records of a batch run through dispatch_many: its index is not the sender's item.
    records = [sqs_record(charge.envelope(Call("4111", n))) for n in (1, 2)]
    invoke({"Records": records})
    logged = captured.of(task_log.name)
    assert len(logged) == 2
    assert all("item_index" not in vars(r) for r in logged)
    assert {vars(r)["attempt"] for r in logged} == {1}  # each record's first delivery


async def test_a_journaled_run_names_its_run_id(captured: Captured, tmp_path: Any) -> None:
    from aiofanout.durable import FileJournal

    async def work(item: int) -> int:
        task_log.info("item %d", item)
        return item

    journal = FileJournal(tmp_path)
    result = await aiofanout.dispatch_many(work, range(3), concurrency=2, journal=journal)
    logged = captured.of(task_log.name)
    assert result.run_id is not None
    assert len(logged) == 3
    assert {vars(r)["run_id"] for r in logged} == {result.run_id}
    started = next(r for r in captured.of("aiofanout") if "journaled in" in r.getMessage())
    assert vars(started)["run_id"] == result.run_id


def test_json_alone_keeps_the_work_s_fields_beside_a_record_s_extra() -> None:
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)  # no ContextFilter: the formatter reads the fields
    handler.setFormatter(aiofanout.logs.JsonFormatter())
    own.addHandler(handler)
    own.propagate = False
    own.setLevel(logging.INFO)

    envelope = tagged.envelope(1)
    try:
        invoke(envelope)
    finally:
        own.removeHandler(handler)
        own.propagate = True
        own.setLevel(logging.NOTSET)
        app.runner.close()
    line = json.loads(lines.getvalue())
    assert (line["task"], line["envelope_id"]) == ("tagged", json.loads(envelope)["id"])
    assert (line["attempt"], line["customer_tier"]) == (9, "gold")  # extra= wins, and is kept
