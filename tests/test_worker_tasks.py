"""The registry: registration, eager mode, argument checks, unknown tasks, the depth budget."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import Annotated, Any

import pytest
from pydantic import Field

from aiofanout import Call, Status, TaskFailed, UsageError, dispatch_many
from aiofanout.errors import DepthExceeded, InvalidArguments, UnknownTask
from aiofanout.wire import decode_task, encode_task
from aiofanout.worker import App

app = App("test")


@app.task
async def add(a: int, b: int = 0) -> int:
    return a + b


@app.task(name="shout", timeout=5)
def shout(word: str) -> dict[str, Any]:
    return {"word": word.upper(), "thread": threading.get_ident()}


@app.task
async def explode(reason: str) -> None:
    raise RuntimeError(reason)


async def test_a_task_stays_the_plain_function() -> None:
    assert await add(2, b=3) == 5
    assert shout("hi")["word"] == "HI"
    assert add.name == "add"
    assert shout.timeout == 5
    assert app.tasks == {"add": add, "shout": shout, "explode": explode}


def test_registering_a_name_twice_is_refused() -> None:
    with pytest.raises(UsageError, match="already registered"):

        @app.task(name="add")
        async def other(x: int) -> int:
            return x


async def test_eager_mode_fans_out_through_the_envelope_round_trip() -> None:
    result = await dispatch_many(add, [1, Call(2, b=5), Call(a=3, b=3)], concurrency=2)
    assert result.values() == [1, 7, 6]
    sync = await dispatch_many(shout, ["a", "b"], concurrency=2)
    assert [v["word"] for v in sync.values()] == ["A", "B"]
    assert threading.get_ident() not in {v["thread"] for v in sync.values()}


async def test_task_errors_come_back_as_task_failed_with_the_remote_type() -> None:
    result = await dispatch_many(explode, ["boom"], concurrency=1)
    error = result[0].error
    assert isinstance(error, TaskFailed)
    assert error.remote_type == "RuntimeError"
    assert error.message == "boom"
    assert result[0].attempts == 1  # a task's own error is not retried by default


async def test_bad_arguments_are_a_clear_non_retryable_error() -> None:
    result = await dispatch_many(add, ["not a number", Call(1, 2, 3), Call(c=1)], concurrency=3)
    assert [o.status for o in result] == [Status.FAILED] * 3
    for outcome in result:
        assert isinstance(outcome.error, InvalidArguments)
        assert not outcome.error.retryable
        assert outcome.attempts == 1
    assert "argument 'a'" in str(result[0].error)


async def test_values_are_coerced_by_the_signature() -> None:
    raw = encode_task("add", ["2"], {"b": 3.0})
    result = await app.run_envelope(raw)
    assert result.reply.value == 5


async def test_constrained_arguments_are_checked_before_the_task_runs() -> None:
    small = App("small")
    ran = []

    @small.task
    async def store(note: Annotated[str, Field(max_length=10)]) -> int:
        ran.append(note)
        return len(note)

    result = await small.run_envelope(encode_task("store", ["x" * 11], {}))
    assert isinstance(result.error, InvalidArguments)
    assert ran == []


async def test_a_message_naming_a_dotted_path_is_refused_and_nothing_is_imported() -> None:
    assert "wave" not in sys.modules
    for name in ("os.system", "wave.open", "builtins.eval", "__import__"):
        result = await app.run_envelope(encode_task(name, ["echo pwned"], {}))
        assert isinstance(result.error, UnknownTask)
        assert result.reply.error is not None
        assert result.reply.error.type == "UnknownTask"
    assert "wave" not in sys.modules


async def test_the_depth_budget_stops_a_task_that_fans_out_to_itself() -> None:
    loop_app = App("loop", max_depth=3)
    depths: list[int] = []

    @loop_app.task
    async def recurse(n: int) -> int:
        depths.append(n)
        result = await dispatch_many(recurse, [n + 1], concurrency=1)
        result.raise_for_failures()
        return int(result.values()[0])

    outer = await dispatch_many(recurse, [0], concurrency=1)
    assert depths == [0, 1, 2, 3]
    error = outer[0].error
    assert isinstance(error, TaskFailed)
    assert "DepthExceeded: dispatching 'recurse' would be hop 4" in str(error)
    refused = await loop_app.run_envelope(encode_task("recurse", [0], {}, depth=4))
    assert isinstance(refused.error, DepthExceeded)


async def test_an_envelope_past_the_budget_is_refused_by_the_worker() -> None:
    deep = encode_task("add", [1], {}, depth=9)
    result = await app.run_envelope(deep)
    assert isinstance(result.error, DepthExceeded)


async def test_the_envelope_deadline_bounds_the_task() -> None:
    slow_app = App("slow")

    @slow_app.task
    async def nap(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "rested"

    raw = encode_task("nap", [5], {}, deadline_ms=decode_deadline_in(0.05))
    result = await slow_app.run_envelope(raw)
    assert isinstance(result.error, TimeoutError)
    assert result.reply.error is not None
    assert result.reply.error.type == "TaskTimedOut"
    assert not result.reply.error.retryable  # it may have done part of its work


def decode_deadline_in(seconds: float) -> int:
    return int((time.time() + seconds) * 1000)


async def test_a_signed_app_runs_only_signed_envelopes() -> None:
    signed = App("signed", secret="k")

    @signed.task
    async def echo(x: int) -> int:
        return x

    assert (await dispatch_many(echo, [1, 2], concurrency=2)).values() == [1, 2]
    unsigned = await signed.run_envelope(encode_task("echo", [1], {}))
    assert unsigned.error is not None
    assert type(unsigned.error).__name__ == "BadSignature"
    good = await signed.run_envelope(encode_task("echo", [3], {}, secret="k"))
    assert good.reply.value == 3
    assert decode_task(echo.prepare(4), secret="k").sig is not None


async def test_a_value_that_is_not_json_is_a_clear_failure() -> None:
    odd = App("odd")

    @odd.task
    async def give() -> Any:
        return {1, 2}

    result = await odd.run_envelope(encode_task("give", [], {}))
    assert isinstance(result.error, UsageError)
    assert "not JSON" in str(result.error)


async def test_logs_carry_ids_but_never_arguments(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    logged = App("logged")

    @logged.task
    async def login(password: str) -> None:
        raise PermissionError("denied")

    @logged.task
    async def store(secret: str) -> int:
        return len(secret)

    caplog.set_level(logging.DEBUG, logger="aiofanout")
    bad = encode_task("login", ["hunter2"], {}, id="task-1", batch_id="batch-9")
    good = encode_task("store", ["hunter3"], {}, id="task-2")
    await logged.run_envelope(bad)
    await logged.run_envelope(good)
    assert "task-1" in caplog.text
    assert "batch-9" in caplog.text
    assert "task-2" in caplog.text
    assert "hunter2" not in caplog.text
    assert "hunter3" not in caplog.text


@pytest.mark.slow
async def test_binding_checks_every_shape_of_signature() -> None:
    shapes = App("shapes")

    @shapes.task
    async def plain(a: int, b: int = 2, *, c: int = 3) -> list[int]:
        return [a, b, c]

    @shapes.task
    async def varargs(*numbers: int, **named: int) -> list[int]:
        return [*numbers, *named.values()]

    async def run(name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        result = await shapes.run_envelope(encode_task(name, args, kwargs))
        if result.error is not None:
            raise result.error
        return result.reply.value

    assert await run("plain", ["1"], {"c": "5"}) == [1, 2, 5]
    assert await run("plain", [], {"a": 1, "b": 4}) == [1, 4, 3]
    assert await run("varargs", [1, "2"], {"x": "3"}) == [1, 2, 3]
    for args, kwargs, message in (
        ([1, 2, 3], {}, "too many positional arguments"),
        ([1], {"a": 1}, "multiple values for argument 'a'"),
        ([1], {"d": 1}, "unexpected keyword argument 'd'"),
        ([], {"b": 1}, "missing a required argument: 'a'"),
        ([1], {"c": "x"}, "argument 'c'"),
    ):
        with pytest.raises(InvalidArguments, match=message):
            await run("plain", args, kwargs)
    with pytest.raises(InvalidArguments, match="argument 'numbers'"):
        await run("varargs", ["x"], {})
