"""Schedules of ``serve --template``: EventBridge's rate and cron expressions, and the scheduler.

The scheduler runs on a virtual clock (a ``looptime`` loop it makes and closes, as in
``test_virtual_clock.py``), so minutes and hours pass in no real time and each fire's time is
exact. A real fire, end to end, is in ``test_template_stack.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import looptime
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiofanout import UsageError

T = TypeVar("T")

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("rate(1 minute)", "2026-01-01T00:00:30", "2026-01-01T00:01:30"),
        ("rate(5 minutes)", "2026-01-01T00:00:00", "2026-01-01T00:05:00"),
        ("rate(2 hours)", "2026-01-01T00:00:00", "2026-01-01T02:00:00"),
        ("rate(1 day)", "2026-01-01T12:00:00", "2026-01-02T12:00:00"),
        ("cron(0/15 * * * ? *)", "2026-01-01T00:07:10", "2026-01-01T00:15:00"),
        ("cron(0/15 * * * ? *)", "2026-01-01T00:15:00", "2026-01-01T00:30:00"),
        ("cron(0 8 ? * MON-FRI *)", "2026-01-02T09:00:00", "2026-01-05T08:00:00"),  # Fri -> Mon
        ("cron(0 8 ? * 1 *)", "2026-01-02T09:00:00", "2026-01-04T08:00:00"),  # 1 is Sunday
        ("cron(30 12 1 JUL ? 2027)", "2026-01-02T09:00:00", "2027-07-01T12:30:00"),
        ("cron(0 0 29 FEB ? *)", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
        ("cron(5,10 1-2 * * ? *)", "2026-01-01T01:10:00", "2026-01-01T02:05:00"),
    ],
)
def test_schedules_fire_at_eventbridges_times(expression: str, after: str, expected: str) -> None:
    from aiofanout.local._template._schedules import parse_schedule

    assert parse_schedule(expression, "x").first(at(after)) == at(expected)


def test_a_cron_that_never_matches_again_never_fires() -> None:
    from aiofanout.local._template._schedules import parse_schedule

    assert parse_schedule("cron(0 0 1 1 ? 2025)", "x").first(at("2026-01-01T00:00:00")) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("rate(1 minutes)", "singular for 1 and plural above"),
        ("rate(5 minute)", "singular for 1 and plural above"),
        ("rate(30 seconds)", "is not rate"),
        ("cron(0 0 L * ? *)", "L, W and # are not supported locally"),
        ("cron(0 0 ? * 3#2 *)", "L, W and # are not supported locally"),
        ("cron(* * * * * *)", "one of day-of-month and day-of-week must be '?'"),
        ("cron(0 25 * * ? *)", "'25' is not within 0-23"),
        ("cron(0 0 * * ?)", "six fields"),
        ("cron(0/0 * * * ? *)", "a step is a positive number"),
    ],
)
def test_a_bad_schedule_expression_is_refused(expression: str, message: str) -> None:
    from aiofanout.local._template._schedules import parse_schedule

    with pytest.raises(UsageError, match=message):
        parse_schedule(expression, "Resources.R.Properties.ScheduleExpression")


WEEK = dt.timedelta(days=7)


@given(
    st.sets(st.integers(0, 59), min_size=1, max_size=4),
    st.sets(st.integers(0, 23), min_size=1, max_size=3),
    st.sets(st.integers(1, 7), min_size=1, max_size=3),
    st.datetimes(dt.datetime(2026, 1, 1), dt.datetime(2030, 1, 1), timezones=st.just(UTC)),
)
def test_a_cron_fires_at_the_first_matching_minute_after(
    minutes: set[int], hours: set[int], weekdays: set[int], moment: dt.datetime
) -> None:
    from aiofanout.local._template._schedules import parse_schedule

    fields = [",".join(map(str, sorted(s))) for s in (minutes, hours)]
    days = ",".join(map(str, sorted(weekdays)))
    cron = parse_schedule(f"cron({fields[0]} {fields[1]} ? * {days} *)", "x")
    fire = cron.first(moment)
    assert fire is not None
    assert moment < fire <= moment + WEEK

    def matches(t: dt.datetime) -> bool:
        weekday = (t.weekday() + 1) % 7 + 1
        return t.minute in minutes and t.hour in hours and weekday in weekdays

    assert matches(fire)
    step = moment.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    while step < fire:  # no matching minute in between, minute by minute
        assert not matches(step)
        step += dt.timedelta(minutes=1)


def in_virtual_time(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` on a fresh event loop whose clock is virtual, and close the loop."""
    with asyncio.Runner(loop_factory=looptime.new_event_loop) as runner:
        return runner.run(main())


EPOCH = at("2026-06-01T10:07:00")


def test_the_scheduler_fires_at_the_rate_from_creation_in_virtual_time() -> None:
    in_virtual_time(_fires_at_the_rate)


async def _fires_at_the_rate() -> None:
    from aiofanout.local._template._schedules import Scheduler, parse_schedule

    loop = asyncio.get_running_loop()
    start = loop.time()
    scheduler = Scheduler(lambda: EPOCH + dt.timedelta(seconds=loop.time() - start))
    rate: list[tuple[dt.datetime, float]] = []
    cron: list[dt.datetime] = []
    scheduler.start(
        "r",
        parse_schedule("rate(2 minutes)", "r"),
        lambda due: rate.append((due, loop.time() - start)),
    )
    scheduler.start("c", parse_schedule("cron(0/15 * * * ? *)", "c"), cron.append)
    await asyncio.sleep(8 * 60 + 1)
    await scheduler.stop()
    # The first rate fire is one rate after creation, then one each rate, on time.
    assert [seconds for _, seconds in rate] == [120.0, 240.0, 360.0, 480.0]
    assert [due for due, _ in rate] == [EPOCH + dt.timedelta(minutes=m) for m in (2, 4, 6, 8)]
    assert cron == [at("2026-06-01T10:15:00")]
    await asyncio.sleep(600)
    assert len(rate) == 4  # stopped: nothing fires after stop()


def test_a_jump_of_the_wall_clock_skips_missed_fires_and_a_failing_fire_goes_on() -> None:
    in_virtual_time(_skips_missed_fires)


async def _skips_missed_fires() -> None:
    from aiofanout.local._template._schedules import Scheduler, parse_schedule

    loop = asyncio.get_running_loop()
    start, jump = loop.time(), [0.0]
    scheduler = Scheduler(lambda: EPOCH + dt.timedelta(seconds=loop.time() - start + jump[0]))
    fired: list[dt.datetime] = []

    def fire(due: dt.datetime) -> None:
        fired.append(due)
        if len(fired) == 1:
            raise RuntimeError("a fire that fails is logged; the schedule goes on")

    scheduler.start("r", parse_schedule("rate(1 minute)", "r"), fire)
    await asyncio.sleep(61)  # the first fire (which fails)
    jump[0] = 10 * 60.0  # the machine slept ten minutes
    await asyncio.sleep(2)  # one fire for the ten missed (the latest), not ten
    await asyncio.sleep(60)  # then the rate again
    await scheduler.stop()
    minutes = [(due - EPOCH) / dt.timedelta(minutes=1) for due in fired]
    assert minutes == [1, 11, 12]
