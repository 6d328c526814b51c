"""Worker entry points with the event JSON AWS sends: SQS batches, direct invokes, the adapter."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Annotated, Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import Field

from aiofanout import Call, UsageError
from aiofanout.errors import InvalidEnvelope
from aiofanout.testing import LambdaContext, sqs_event, sqs_record
from aiofanout.worker import App, LoopRunner, lambda_entrypoint

app = App("worker", secret="s3cret")
ran: list[str] = []


@app.task
async def work(name: str) -> str:
    ran.append(name)
    if name.startswith("fail"):
        raise ValueError(f"{name} failed")
    if name.startswith("slow"):
        await asyncio.sleep(0.3)
    return name.upper()


@app.task
def note(text: Annotated[str, Field(max_length=64)]) -> int:
    return len(text)


def ids(event: dict[str, Any], *positions: int) -> list[dict[str, str]]:
    return [{"itemIdentifier": event["Records"][p]["messageId"]} for p in positions]


@pytest.fixture(autouse=True)
def _clear() -> Iterator[None]:
    ran.clear()
    yield
    app.runner.close()


def test_all_records_succeed() -> None:
    event = sqs_event([work.envelope(n) for n in ("a", "b", "c")])
    assert app.lambda_handler(event, LambdaContext()) == {"batchItemFailures": []}
    assert sorted(ran) == ["a", "b", "c"]


def test_records_whose_task_raises_are_reported() -> None:
    event = sqs_event([work.envelope(n) for n in ("a", "fail-1", "b", "fail-2")])
    assert app.lambda_handler(event, LambdaContext()) == {"batchItemFailures": ids(event, 1, 3)}


def test_malformed_unknown_unsigned_and_oversized_records_are_reported_not_run() -> None:
    unsigned = App("other")
    unsigned.task(name="work")(work.fn)
    bodies = [
        work.envelope("ok-1"),
        b"{this is not json",
        json.dumps({"v": 1, "id": "x", "task": "os.system", "args": ["id"]}).encode(),
        unsigned.tasks["work"].envelope("unsigned"),
        note.envelope("x" * 65),  # over the task's declared max_length
        work.envelope(Call(name="ok-2")),
    ]
    event = sqs_event(bodies)
    assert app.lambda_handler(event, LambdaContext()) == {
        "batchItemFailures": ids(event, 1, 2, 3, 4)
    }
    assert sorted(ran) == ["ok-1", "ok-2"]


def test_records_not_reached_before_the_deadline_are_reported() -> None:
    limited = App("limited", concurrency=1, deadline_margin=1.0)
    started: list[str] = []

    @limited.task
    async def step(name: str) -> str:
        started.append(name)
        if name == "blocked":
            # Far past the deadline: only the deadline ends it in time (and if the deadline
            # is not enforced, it succeeds after a minute and the test fails, not hangs).
            await asyncio.sleep(60)
        return name

    # The scripted context leaves 0.5 s past the 1 s margin. One record at a time: "quick" ends
    # at once, "blocked" runs until the deadline cuts it off, the last two never start.
    # Nothing depends on how long a step takes, only on which steps can end by themselves.
    event = sqs_event([step.envelope(n) for n in ("quick", "blocked", "never-1", "never-2")])
    failures = limited.lambda_handler(event, LambdaContext(clock=lambda: 1_500))
    assert failures == {"batchItemFailures": ids(event, 1, 2, 3)}
    assert started == ["quick", "blocked"]
    limited.runner.close()


def test_a_deadline_already_inside_the_margin_reports_every_record() -> None:
    event = sqs_event([work.envelope(n) for n in ("a", "b")])
    failures = app.lambda_handler(event, LambdaContext(remaining_ms=500))  # margin is 2 s
    assert failures == {"batchItemFailures": ids(event, 0, 1)}
    assert ran == []


def test_fifo_stops_at_the_first_failure_and_reports_it_and_every_later_record() -> None:
    event = sqs_event([work.envelope(n) for n in ("a", "b", "fail-x", "c", "d")], fifo=True)
    assert app.lambda_handler(event, LambdaContext()) == {"batchItemFailures": ids(event, 2, 3, 4)}
    assert ran == ["a", "b", "fail-x"]


def test_fifo_runs_in_order() -> None:
    event = sqs_event([work.envelope(n) for n in ("slow-1", "a", "slow-2", "b")], fifo=True)
    assert app.lambda_handler(event, LambdaContext()) == {"batchItemFailures": []}
    assert ran == ["slow-1", "a", "slow-2", "b"]


def test_a_direct_invoke_returns_the_reply_or_raises_the_task_error() -> None:
    ok = app.lambda_handler(json.loads(work.envelope("hi")), LambdaContext())
    assert ok["ok"] is True
    assert ok["value"] == "HI"
    with pytest.raises(ValueError, match="fail-now failed"):
        app.lambda_handler(json.loads(work.envelope("fail-now")), LambdaContext())


def test_a_chunked_invoke_answers_one_reply_per_item() -> None:
    chunk = [json.loads(work.envelope(n)) for n in ("a", "fail-b", "c")]
    replies = app.lambda_handler(chunk, LambdaContext())
    assert [r["ok"] for r in replies] == [True, False, True]
    assert [r["id"] for r in replies] == [c["id"] for c in chunk]
    assert replies[1]["error"]["type"] == "ValueError"
    assert replies[2]["value"] == "C"


def test_an_sqs_record_body_in_the_event_is_just_the_envelope() -> None:
    record = sqs_record(work.envelope("z"), queue="q")
    assert record["eventSourceARN"].endswith(":q")
    assert app.lambda_handler({"Records": [record]}, None) == {"batchItemFailures": []}


async def test_calling_the_sync_handler_inside_a_loop_says_what_to_use() -> None:
    with pytest.raises(UsageError, match=r"await app\.handle"):
        app.lambda_handler(sqs_event([work.envelope("a")]), None)
    assert await app.handle(sqs_event([work.envelope("a")]), None) == {"batchItemFailures": []}


@pytest.mark.parametrize("fifo", [False, True])
def test_an_sqs_record_without_a_message_id_refuses_the_batch_before_anything_runs(
    fifo: bool,
) -> None:
    event = sqs_event([work.envelope(n) for n in ("a", "fail-x", "b")], fifo=fifo)
    del event["Records"][1]["messageId"]
    with pytest.raises(InvalidEnvelope, match=r"record 1 of 3 has no messageId") as info:
        app.lambda_handler(event, LambdaContext())
    assert "nothing ran" in str(info.value)
    assert ran == []  # the valid records did not run, so the redelivered batch runs them once


def test_an_event_mixing_sqs_and_other_records_is_refused_before_anything_runs() -> None:
    event = sqs_event([work.envelope("a"), work.envelope("b")])
    event["Records"].insert(1, {"eventSource": "aws:s3", "s3": {"object": {"key": "k"}}})
    with pytest.raises(InvalidEnvelope) as info:
        app.lambda_handler(event, LambdaContext())
    message = str(info.value)
    assert "2 from aws:sqs" in message
    assert "1 from aws:s3" in message
    assert "upgrade" not in message
    assert ran == []


def test_an_event_of_other_sources_is_refused_saying_what_it_is() -> None:
    event = {"Records": [{"eventSource": "aws:dynamodb"}, "text", {"no": "source"}]}
    with pytest.raises(InvalidEnvelope, match="refused an event of 3 records") as info:
        app.lambda_handler(event, LambdaContext())
    assert "(1 from aws:dynamodb, 1 not an object (str), 1 with no eventSource)" in str(info.value)


def test_an_event_with_no_records_is_an_empty_batch_not_an_envelope() -> None:
    assert app.lambda_handler({"Records": []}, LambdaContext()) == {"batchItemFailures": []}


async def test_calling_a_lambda_entrypoint_inside_a_loop_says_to_await_the_function() -> None:
    @lambda_entrypoint
    async def handler(event: Any, context: Any) -> str:
        return f"ran {event}"

    with pytest.raises(UsageError) as info:
        handler("x", None)
    message = str(info.value)
    assert "app.handle" not in message  # there is no app here
    assert "await handler.__wrapped__(event, context)" in message
    assert await handler.__wrapped__("x", None) == "ran x"  # the advice works


class _Server:
    """An aiohttp server on 127.0.0.1 in its own thread, counting requests and connections."""

    def __init__(self) -> None:
        self.requests = 0
        self.peers: set[Any] = set()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def hello(request: web.Request) -> web.Response:
            self.requests += 1
            self.peers.add(
                request.transport.get_extra_info("peername") if request.transport else None
            )
            return web.json_response({"n": self.requests})

        web_app = web.Application()
        web_app.router.add_get("/", hello)
        self.runner = web.AppRunner(web_app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    def __enter__(self) -> _Server:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_the_sync_adapter_keeps_one_loop_and_one_session_across_invocations() -> None:
    http_app = App("http")
    sessions: list[aiohttp.ClientSession] = []
    loops: set[int] = set()

    @http_app.task
    async def fetch(url: str) -> int:
        if not sessions:
            sessions.append(aiohttp.ClientSession())  # created once, kept across invocations
        loops.add(id(asyncio.get_running_loop()))
        async with sessions[0].get(url) as response:
            return int((await response.json())["n"])

    with _Server() as server:
        url = f"http://127.0.0.1:{server.port}/"
        values = [
            http_app.lambda_handler(json.loads(fetch.envelope(url)), LambdaContext())["value"]
            for _ in range(25)
        ]
        assert values == list(range(1, 26))
        assert len(loops) == 1
        assert len(server.peers) == 1  # one kept-alive connection served all 25 invocations
        http_app.runner.run(sessions[0].close())
    http_app.runner.close()


def test_the_fresh_loop_mode_runs_each_invocation_on_its_own_loop() -> None:
    fresh = App("fresh", loop="fresh")
    loops: list[asyncio.AbstractEventLoop] = []

    @fresh.task
    async def which() -> int:
        loops.append(asyncio.get_running_loop())
        return len(loops)

    for _ in range(3):
        assert fresh.lambda_handler(json.loads(which.envelope(Call())), None)["ok"]
    assert len({id(loop) for loop in loops}) == 3
    assert all(loop.is_closed() for loop in loops)


def test_a_loop_runner_closes_cleanly() -> None:
    runner = LoopRunner()

    async def answer() -> int:
        return 42

    assert runner.run(answer()) == 42
    loop = runner.loop
    runner.close()
    assert loop is not None
    assert loop.is_closed()


@pytest.mark.usefixtures("aws_client_path")  # the reply sends on both client paths
async def test_a_reply_envelope_goes_to_the_reply_to_queue(
    moto: Any, sqs: Any, queue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiofanout.wire import decode_reply

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)  # botocore reads it natively
    replying = App("replying")

    @replying.task
    async def double(x: int) -> int:
        return 2 * x

    bodies = [double.envelope(3, reply_to=queue_url), double.envelope("x", reply_to=queue_url)]
    event = sqs_event(bodies)
    # The failed record's error reply is its answer: the sender decides whether to try again,
    # so SQS does not deliver it again (which would run it twice and reply twice).
    assert await replying.handle(event, LambdaContext()) == {"batchItemFailures": []}
    got = await sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    replies = sorted((decode_reply(m["Body"]) for m in got["Messages"]), key=lambda r: r.ok)
    assert [r.ok for r in replies] == [False, True]
    assert replies[1].value == 6
    assert replies[0].error is not None
    assert replies[0].error.type == "InvalidArguments"
    await replying.runner.aclose()


async def test_an_expired_record_is_done_without_running_or_replying(
    moto: Any, sqs: Any, queue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
    late = App("late")
    ran: list[int] = []

    @late.task
    async def record(x: int) -> int:
        ran.append(x)
        return x

    past = int(time.time() * 1000) - 1_000
    fresh = record.envelope(1, reply_to=queue_url)
    stale = record.envelope(2, reply_to=queue_url, deadline_ms=past)
    stale_no_reply = record.envelope(3, deadline_ms=past)
    event = sqs_event([fresh, stale, stale_no_reply])
    # Expired records are not reported: SQS must not bring back work nobody waits for.
    assert await late.handle(event, LambdaContext()) == {"batchItemFailures": []}
    assert ran == [1]
    got = await sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    assert len(got["Messages"]) == 1  # only the fresh record's reply: nobody waits for the rest
    await late.runner.aclose()


async def test_no_reply_client_reports_only_the_records_awaiting_a_reply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiofanout.worker import _reply_sender

    async def broken(runner: Any) -> Any:
        raise RuntimeError("no client")

    monkeypatch.setattr(_reply_sender, "_reply_client", broken)
    app = App("replies")

    @app.task
    async def double(x: int) -> int:
        return 2 * x

    awaited = double.envelope(1, reply_to="http://127.0.0.1:9/queue/replies")
    event = sqs_event([awaited, double.envelope(2)])
    # Both ran; only the one whose reply could not go out comes back (not the whole batch).
    assert await app.handle(event, LambdaContext()) == {"batchItemFailures": ids(event, 0)}
