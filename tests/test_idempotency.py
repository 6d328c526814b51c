"""Idempotent tasks: once per key, against a real moto server's DynamoDB through aioboto3."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aioboto3
import pytest

from aiofanout import Call, FileJournal, UsageError, dispatch_many, resume
from aiofanout.errors import IdempotencyKeyReused, InProgress
from aiofanout.testing import LambdaContext, MotoServer, eventually, sqs_event
from aiofanout.wire import decode_task, encode_task
from aiofanout.worker import App, DynamoDBStore, MemoryStore, Task


@pytest.fixture
async def store(moto: MotoServer) -> AsyncIterator[DynamoDBStore]:
    """A store on a table that does not exist yet: every test creates it on first use."""
    table = f"idem-{uuid.uuid4().hex[:12]}"
    async with DynamoDBStore(table=table, endpoint_url=moto.endpoint_url) as store:
        yield store


def now_ms() -> int:
    return int(time.time() * 1000)


async def _record(moto: MotoServer, table: str, key: str) -> dict[str, Any]:
    session = aioboto3.Session(region_name="us-east-1")
    async with session.client("dynamodb", endpoint_url=moto.endpoint_url) as client:
        answer = await client.get_item(TableName=table, Key={"pk": {"S": key}})
    item: dict[str, Any] = answer.get("Item", {})
    return item


async def test_the_same_envelope_twice_runs_once_and_both_get_the_reply(
    store: DynamoDBStore,
) -> None:
    app = App("w", idempotency=store)
    runs = Counter[int]()

    @app.task(idempotent=True)
    async def square(x: int) -> int:
        runs[x] += 1
        return x * x

    envelope = square.envelope(7)
    first = await app.run_envelope(envelope)
    second = await app.run_envelope(envelope)
    assert runs == {7: 1}
    assert first.error is None
    assert second.error is None
    assert first.reply == second.reply
    assert second.reply.value == 49


async def test_a_resent_envelope_gets_the_stored_reply_under_its_own_id(
    store: DynamoDBStore,
) -> None:
    app = App("w", idempotency=store)
    runs: list[int] = []

    @app.task(idempotent=True)
    async def square(x: int) -> int:
        runs.append(x)
        return x * x

    first, again = square.envelope(3), square.envelope(3)  # a re-sent invoke: a new id
    assert decode_task(first).id != decode_task(again).id
    assert (await app.run_envelope(first)).reply.value == 9
    reply = (await app.run_envelope(again)).reply
    assert runs == [3]
    assert reply.value == 9
    assert reply.id == decode_task(again).id  # a fan-in matches replies by id


async def test_a_concurrent_duplicate_does_not_run_and_fails_retryably(
    store: DynamoDBStore,
) -> None:
    app = App("w", idempotency=store)
    gate = asyncio.Event()
    runs: list[int] = []

    @app.task(idempotent=True)
    async def slow(x: int) -> int:
        runs.append(x)
        await gate.wait()
        return x

    envelope = slow.envelope(1)
    # The duplicate arrives while the first run holds the key. Not both claims at the same
    # instant: moto serves requests on threads and does not promise, as DynamoDB does, that two
    # concurrent conditional writes are atomic; under load this test once hung that way.
    first = asyncio.create_task(app.run_envelope(envelope))
    await eventually(lambda: runs == [1], timeout=30)
    loser = await asyncio.wait_for(app.run_envelope(envelope), timeout=30)
    assert isinstance(loser.error, InProgress)
    assert loser.error.retryable
    assert loser.reply.error is not None
    assert loser.reply.error.retryable  # what the sender sees crosses the wire retryable
    gate.set()
    winner = await asyncio.wait_for(first, timeout=30)
    assert winner.error is None
    assert winner.reply.value == 1
    assert runs == [1]
    assert (await app.run_envelope(envelope)).reply.value == 1  # later: the stored reply
    assert runs == [1]


async def test_a_sender_sees_in_progress_as_a_retryable_task_failure(
    store: DynamoDBStore,
) -> None:
    app = App("w", idempotency=store)
    started, gate = asyncio.Event(), asyncio.Event()

    @app.task(idempotent=True)
    async def slow(x: int) -> int:
        started.set()
        await gate.wait()
        return x

    first = asyncio.create_task(slow.call(slow.prepare(5), timeout=None))
    await started.wait()
    with pytest.raises(InProgress) as caught:  # the library's own type, across the wire too
        await slow.call(slow.prepare(5), timeout=None)
    assert caught.value.retryable
    gate.set()
    assert await first == 5


@pytest.mark.slow
async def test_a_crashed_run_holds_its_key_until_its_deadline_then_one_delivery_takes_over(
    moto: MotoServer, store: DynamoDBStore
) -> None:
    app = App("w", idempotency=store)
    started = asyncio.Event()
    runs: list[str] = []

    # Long enough that a loaded machine still sends the duplicate before the record expires.
    timeout = 3.0

    @app.task(idempotent=True, timeout=timeout)
    async def job(x: str) -> str:
        runs.append(x)
        if len(runs) == 1:
            started.set()
            await asyncio.Event().wait()  # the first run never ends by itself
        return x.upper()

    envelope = job.envelope("a")
    crashed = asyncio.create_task(app.run_envelope(envelope))
    await started.wait()
    crashed.cancel()  # the process died: nothing released the key
    with pytest.raises(asyncio.CancelledError):
        await crashed
    assert isinstance((await app.run_envelope(envelope)).error, InProgress)

    from aiofanout.worker._idempotency import store_key

    key = store_key("w", "job", "arguments", [["a"], {}])
    record = await _record(moto, store.table, key)
    assert record["status"]["S"] == "IN_PROGRESS"
    expires_at_ms = int(record["expires_at_ms"]["N"])
    assert expires_at_ms <= now_ms() + timeout * 1000  # at the task's own deadline
    await eventually(lambda: now_ms() > expires_at_ms, interval=0.01)  # until it expires
    assert now_ms() > expires_at_ms

    results = await asyncio.gather(*(app.run_envelope(envelope) for _ in range(3)))
    assert runs == ["a", "a"]  # taken over once
    assert [r.reply.value for r in results if r.error is None]
    assert all(r.reply.value == "A" or isinstance(r.error, InProgress) for r in results)
    assert (await app.run_envelope(envelope)).reply.value == "A"
    assert runs == ["a", "a"]


@pytest.mark.slow
async def test_an_sqs_batch_delivered_twice_runs_each_task_once(store: DynamoDBStore) -> None:
    app = App("w", idempotency=store)
    runs = Counter[int]()

    @app.task(idempotent=True)
    async def work(x: int) -> int:
        runs[x] += 1
        return x

    bodies = [work.envelope(x) for x in range(6)]
    for _ in range(2):
        answer = await app.handle(sqs_event(bodies), LambdaContext(remaining_ms=30_000))
        assert answer == {"batchItemFailures": []}
    assert runs == dict.fromkeys(range(6), 1)


async def test_a_failed_run_is_not_stored_so_a_retry_runs_it_again(store: DynamoDBStore) -> None:
    app = App("w", idempotency=store)
    runs: list[int] = []

    @app.task(idempotent=True)
    async def flaky(x: int) -> int:
        runs.append(x)
        if len(runs) == 1:
            raise ConnectionError("the first try fails")
        return x

    envelope = flaky.envelope(4)
    assert isinstance((await app.run_envelope(envelope)).error, ConnectionError)
    assert (await app.run_envelope(envelope)).reply.value == 4
    assert (await app.run_envelope(envelope)).reply.value == 4
    assert runs == [4, 4]


async def test_a_key_function_makes_calls_with_one_key_one_call(store: DynamoDBStore) -> None:
    app = App("w", idempotency=store)
    charged: list[dict[str, Any]] = []

    @app.task(idempotent=True, key=lambda order: order["id"])
    async def charge(order: dict[str, Any]) -> str:
        charged.append(order)
        return f"charged {order['id']}"

    one = charge.envelope({"id": "o-1", "note": "first"})
    same_order = charge.envelope({"id": "o-1", "note": "first"})  # a new envelope id
    assert decode_task(one).idempotency_key == "o-1"
    assert (await app.run_envelope(one)).reply.value == "charged o-1"
    assert (await app.run_envelope(same_order)).reply.value == "charged o-1"
    assert (await app.run_envelope(charge.envelope({"id": "o-2"}))).reply.value == "charged o-2"
    assert [o["id"] for o in charged] == ["o-1", "o-2"]


async def test_a_key_sent_again_with_other_arguments_is_refused_naming_them() -> None:
    app = App("w", idempotency=MemoryStore())
    charged: list[int] = []

    @app.task(idempotent=True, key=lambda order_id, amount: order_id)
    async def charge(order_id: str, amount: int) -> str:
        charged.append(amount)
        return f"charged {amount}"

    assert await charge.call(charge.prepare(Call("o-1", 100)), timeout=None) == "charged 100"
    with pytest.raises(IdempotencyKeyReused) as caught:  # its own type, across the wire
        await charge.call(charge.prepare(Call("o-1", amount=250)), timeout=None)
    message = str(caught.value)
    assert "these differ: amount." in message  # which argument, and not order_id
    assert "250" not in message
    assert "100" not in message  # no argument values
    assert not caught.value.retryable
    result = await dispatch_many(charge, [Call("o-1", 100), Call("o-1", 999)], concurrency=1)
    assert result.values() == ["charged 100"]  # the first call's reply, as before
    assert isinstance(result[1].error, IdempotencyKeyReused)
    assert result[1].attempts == 1  # not retried: the same call gets the same answer
    assert charged == [100]


async def test_dynamodb_keeps_the_fingerprint_a_reused_key_is_checked_against(
    store: DynamoDBStore,
) -> None:
    app = App("w", idempotency=store)

    @app.task(idempotent=True, key=lambda order_id, amount: order_id)
    async def charge(order_id: str, amount: int) -> int:
        return amount

    assert (await app.run_envelope(charge.envelope(Call("o-9", 5)))).reply.value == 5
    assert (await app.run_envelope(charge.envelope(Call("o-9", 5)))).reply.value == 5
    refused = await app.run_envelope(charge.envelope(Call("o-9", 6)))
    assert isinstance(refused.error, IdempotencyKeyReused)
    assert "amount" in str(refused.error)


async def test_keys_of_other_apps_tasks_and_key_types_never_meet() -> None:
    store = MemoryStore()
    runs: list[str] = []

    def app_with_task(app_name: str, task_name: str) -> App:
        app = App(app_name, idempotency=store)

        @app.task(idempotent=True, name=task_name)
        async def record(x: int) -> str:
            runs.append(f"{app_name}+{task_name}")
            return f"{app_name}+{task_name}"

        return app

    a, ab = app_with_task("a", "b/c"), app_with_task("a/b", "c")
    first = encode_task("b/c", [1], {}, idempotency_key="k")
    second = encode_task("c", [1], {}, idempotency_key="k")
    assert (await a.run_envelope(first)).reply.value == "a+b/c"
    assert (await ab.run_envelope(second)).reply.value == "a/b+c"  # was a's reply
    assert runs == ["a+b/c", "a/b+c"]

    typed = App("t", idempotency=store)
    seen: list[Any] = []

    @typed.task(idempotent=True, key=lambda k: k)
    async def keyed(k: int | str) -> str:
        seen.append(k)
        return repr(k)

    assert (await typed.run_envelope(keyed.envelope(1))).reply.value == "1"
    assert (await typed.run_envelope(keyed.envelope("1"))).reply.value == "'1'"
    assert seen == [1, "1"]


async def test_a_sender_chosen_key_never_takes_another_calls_place() -> None:
    import hashlib
    import json

    app = App("w", idempotency=MemoryStore())

    @app.task(idempotent=True)
    async def pay(account: str) -> str:
        return f"paid {account}"

    # The hash the worker once keyed pay("alice") by; a sender chooses it as its own key.
    canonical = json.dumps(["pay", ["alice"], {}], sort_keys=True, separators=(",", ":"))
    hijack = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    forged = encode_task("pay", ["mallory"], {}, idempotency_key=hijack)
    assert (await app.run_envelope(forged)).reply.value == "paid mallory"
    assert (await app.run_envelope(pay.envelope("alice"))).reply.value == "paid alice"


async def test_an_envelope_sent_by_name_gets_the_same_key_on_the_worker() -> None:
    app = App("w", idempotency=MemoryStore())
    runs: list[int] = []

    @app.task(idempotent=True)
    async def inc(x: int) -> int:
        runs.append(x)
        return x + 1

    from aiofanout.worker._idempotency import store_key

    by_name = encode_task("inc", [10], {})  # a sender without the task object: no key
    assert decode_task(by_name).idempotency_key is None
    assert decode_task(inc.envelope(10)).idempotency_key is None  # the worker keys by arguments
    assert (await app.run_envelope(by_name)).reply.value == 11
    assert (await app.run_envelope(inc.envelope(10))).reply.value == 11
    assert runs == [10]
    assert list(app.idempotency.records) == [  # type: ignore[union-attr]
        store_key("w", "inc", "arguments", [[10], {}])
    ]


async def _runs_of_a_plain_task(store: DynamoDBStore | MemoryStore) -> list[int]:
    app = App("w", idempotency=store)
    runs: list[int] = []

    @app.task
    async def plain(x: int) -> int:
        runs.append(x)
        return x

    envelope = plain.envelope(1)
    assert decode_task(envelope).idempotency_key is None
    for _ in range(3):
        assert (await app.run_envelope(envelope)).reply.value == 1
    return runs


async def test_tasks_without_idempotent_are_unaffected(store: DynamoDBStore) -> None:
    memory = MemoryStore()
    assert await _runs_of_a_plain_task(store) == [1, 1, 1]
    assert await _runs_of_a_plain_task(memory) == [1, 1, 1]
    assert memory.records == {}


def negating_app() -> tuple[App, Task[[int], Any], Counter[int]]:
    """An app with a ``MemoryStore`` and an idempotent ``work`` that negates; its runs by item."""
    app = App("w", idempotency=MemoryStore())
    runs = Counter[int]()

    @app.task(idempotent=True)
    async def work(x: int) -> int:
        runs[x] += 1
        return -x

    return app, work, runs


async def test_an_eager_fan_out_of_equal_items_runs_each_distinct_item_once() -> None:
    _, work, runs = negating_app()
    result = await dispatch_many(work, [1, 2, 1, 2, 3], concurrency=1)
    assert result.values() == [-1, -2, -1, -2, -3]
    assert runs == {1: 1, 2: 1, 3: 1}  # the documented limit of the content key


async def test_a_journaled_run_keys_items_by_run_and_index_so_a_lost_record_runs_nothing_again(
    tmp_path: Path,
) -> None:
    app, work, runs = negating_app()
    journal = FileJournal(tmp_path)
    items = [1, 2, 1, 2, 3]
    result = await dispatch_many(work, items, concurrency=2, journal=journal, run_id="keyed")
    assert result.values() == [-1, -2, -1, -2, -3]
    assert runs == {1: 2, 2: 2, 3: 1}  # equal arguments, other items: each one ran
    store = app.idempotency
    assert isinstance(store, MemoryStore)
    token = (await journal.check_run("keyed"))["token"]  # made when the run started
    from aiofanout.worker._idempotency import store_key

    keys = {store_key("w", "work", "sender", f"keyed:{token}:{index}") for index in range(5)}
    assert set(store.records) == keys

    # A crash before the journal wrote its part loses the records of items that ran. Resume
    # sends them all again; the store knows each by its key and answers without running it.
    for part in (tmp_path / "keyed" / "parts").iterdir():
        part.unlink()
    resumed = await resume("keyed", work, items, journal=journal, concurrency=2)
    assert resumed.values() == [-1, -2, -1, -2, -3]
    assert [o.attempts for o in resumed] == [1] * 5  # sent again, not replayed from the journal
    assert runs == {1: 2, 2: 2, 3: 1}


async def test_a_run_id_used_again_in_another_journal_is_another_run(tmp_path: Path) -> None:
    app = App("w", idempotency=MemoryStore())

    @app.task(idempotent=True)
    async def double(x: int) -> int:
        return 2 * x

    monday = FileJournal(tmp_path / "monday")
    tuesday = FileJournal(tmp_path / "tuesday")
    first = await dispatch_many(double, [1, 2, 3], concurrency=2, journal=monday, run_id="nightly")
    again = await dispatch_many(double, [10, 20], concurrency=2, journal=tuesday, run_id="nightly")
    assert first.values() == [2, 4, 6]
    assert again.values() == [20, 40]  # not Monday's replies to items 0 and 1


async def test_a_key_function_outranks_the_run_key(tmp_path: Path) -> None:
    app = App("w", idempotency=MemoryStore())
    charged: list[str] = []

    @app.task(idempotent=True, key=lambda order: order["id"])
    async def charge(order: dict[str, str]) -> str:
        charged.append(order["id"])
        return f"charged {order['id']}"

    orders = [{"id": "o-1"}, {"id": "o-1"}, {"id": "o-2"}]
    journal = FileJournal(tmp_path)
    result = await dispatch_many(charge, orders, concurrency=1, journal=journal, run_id="orders")
    assert result.values() == ["charged o-1", "charged o-1", "charged o-2"]
    assert charged == ["o-1", "o-2"]  # one order is charged once, whatever item carries it
    key = decode_task(charge.prepare_keyed(orders[0], "orders:0")).idempotency_key
    assert key == "o-1"
    # A sender by name sends the run's key; the worker's key function still decides.
    by_name = encode_task("charge", [{"id": "o-2"}], {}, idempotency_key="other-run:7")
    assert (await app.run_envelope(by_name)).reply.value == "charged o-2"
    assert charged == ["o-1", "o-2"]


def test_the_lambda_handler_closes_the_store_with_its_loop(moto: MotoServer) -> None:
    store = DynamoDBStore(table=f"idem-{uuid.uuid4().hex[:12]}", endpoint_url=moto.endpoint_url)
    app = App("w", idempotency=store)
    runs: list[int] = []

    @app.task(idempotent=True)
    async def work(x: int) -> int:
        runs.append(x)
        return x

    try:
        for _ in range(2):  # two warm invocations, one loop
            assert app.lambda_handler(work.envelope(8), LambdaContext(remaining_ms=30_000))
        assert runs == [8]
        assert store._table.is_open
    finally:
        app.runner.close()
    assert not store._table.is_open


def test_misuse_says_what_to_change() -> None:
    with pytest.raises(UsageError, match="has no store"):
        App("w").task(idempotent=True)(lambda x: x)
    with pytest.raises(UsageError, match="idempotent=True"):
        App("w", idempotency=MemoryStore()).task(key=lambda x: x)(lambda x: x)
    with pytest.raises(UsageError, match="ttl"):
        MemoryStore(ttl=0)
    app = App("w", idempotency=MemoryStore())
    task = app.task(idempotent=True, key=lambda x: [x])(lambda x: x)  # type: ignore[arg-type, return-value]
    with pytest.raises(UsageError, match="str or an int"):
        task.envelope(1)


def test_an_idempotent_task_may_be_re_sent_after_an_ambiguous_failure() -> None:
    from aiofanout import LambdaTarget

    once = App("once", idempotency=MemoryStore())

    @once.task(idempotent=True)
    async def charge(order: str) -> str:
        return order

    @once.task
    async def plain(order: str) -> str:
        return order

    # Re-sending what may have run is safe when the worker runs it once per key.
    assert LambdaTarget("w", task=charge).retry_ambiguous
    assert not LambdaTarget("w", task=charge).ambiguous_timeouts
    assert not LambdaTarget("w", task=plain).retry_ambiguous
    assert not LambdaTarget("w", task=charge, retry_ambiguous=False).retry_ambiguous
