"""Typed results: what mypy infers for ``dispatch_many`` and ``stream``.

mypy --strict checks this file with the rest of the suite (``nox -s ci``): each ``assert_type``
fails the type check if a result loses its value type (``FanoutResult[Any]`` where
``FanoutResult[int]`` is meant). The tests also run, so the values are real.
"""

from __future__ import annotations

from typing import Any, assert_type

from aiofanout import FanoutResult, LambdaTarget, Outcome, dispatch_many, stream


async def double(x: int) -> int:
    return 2 * x


def shout(word: str) -> str:
    return word.upper()


async def test_an_async_function_gives_its_return_type() -> None:
    result = await dispatch_many(double, range(5), concurrency=2)
    assert_type(result, FanoutResult[int])
    values = result.values()
    assert_type(values, list[int])
    assert values == [0, 2, 4, 6, 8]
    first = result[0]
    assert_type(first, Outcome[int])
    assert_type(first.unwrap(), int)


async def test_a_sync_function_gives_its_return_type() -> None:
    result = await dispatch_many(shout, ["a", "b"], concurrency=2)
    assert_type(result.values(), list[str])
    assert result.values() == ["A", "B"]


async def test_stream_outcomes_carry_the_value_type() -> None:
    seen: list[int] = []
    async with stream(double, range(3), concurrency=2) as outcomes:
        async for outcome in outcomes:
            assert_type(outcome, Outcome[int])
            seen.append(outcome.unwrap())
    assert sorted(seen) == [0, 2, 4]


def test_a_remote_target_gives_any() -> None:
    # What a remote worker returns is JSON the type checker cannot know.
    target = LambdaTarget("worker", task="double")

    async def run() -> FanoutResult[Any]:
        return await dispatch_many(target, [1], concurrency=1)

    assert callable(run)
