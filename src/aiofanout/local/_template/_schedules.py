"""Schedules: EventBridge's ``rate(...)`` and ``cron(...)`` expressions, and what fires them.

As on AWS, times are UTC to the minute. A rate starts when its rule is created: its first fire
is one rate later (``rate(5 minutes)`` fires 5, 10, 15 ... minutes after the stack started),
never at once. A cron fires at every minute its six fields (minutes, hours, day of month,
month, day of week 1-7 = SUN-SAT, year) match, with ``*``, ``?``, lists, ranges, steps and
names (``JAN``, ``MON-FRI``); ``L``, ``W`` and ``#`` are refused with a :class:`UsageError`. Of
fires missed while the machine slept, only the latest fires, once (EventBridge, always awake,
misses none; nothing backfills them here).

:class:`Scheduler` runs one task per schedule, ended together by :meth:`Scheduler.stop`. It
reads the time from a clock (the wall clock by default; a test passes its own) and never
sleeps more than :data:`NAP` at once: the wall clock can jump (a laptop that slept, NTP) while
the event loop's clock does not, and a schedule must follow the wall clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..._errors import UsageError
from ..._log_fields import library_logger
from .._account import ACCOUNT, REGION
from .._background import Background

#: The longest a schedule's task sleeps before it reads the clock again (seconds).
NAP = 1.0
MINUTE = dt.timedelta(minutes=1)
RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
CRON = re.compile(r"cron\(([^)]*)\)")
UNITS = {"minute": MINUTE, "hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
log = library_logger("aiofanout.local")


class Schedule(Protocol):
    """When a schedule fires: its first time after it is created, and each next one."""

    def first(self, created: dt.datetime) -> dt.datetime | None:
        """The first fire after ``created`` (``None``: never)."""

    def next(self, due: dt.datetime) -> dt.datetime | None:
        """The fire after the one due at ``due`` (``None``: never again)."""


@dataclass(frozen=True, slots=True)
class Rate:
    """``rate(N unit)``: every ``period``, the first one ``period`` after creation."""

    period: dt.timedelta

    def first(self, created: dt.datetime) -> dt.datetime:
        return created + self.period

    def next(self, due: dt.datetime) -> dt.datetime:
        return due + self.period


@dataclass(frozen=True, slots=True)
class Cron:
    """``cron(minutes hours day-of-month month day-of-week year)``: each matching UTC minute."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int] | None  # None: "?"
    months: frozenset[int]
    weekdays: frozenset[int] | None  # 1-7 = SUN-SAT; None: "?"
    years: frozenset[int]

    def first(self, created: dt.datetime) -> dt.datetime | None:
        return self.after(created)

    def next(self, due: dt.datetime) -> dt.datetime | None:
        return self.after(due)

    def after(self, moment: dt.datetime) -> dt.datetime | None:
        """The first matching minute strictly after ``moment``."""
        start = moment.replace(second=0, microsecond=0) + MINUTE
        day = start.date()
        while day.year <= max(self.years):
            if day.year not in self.years:
                day = dt.date(day.year + 1, 1, 1)
            elif day.month not in self.months:
                day = _next_month(day)
            else:
                earliest = start.time() if day == start.date() else dt.time()
                found = self._on(day, earliest) if self._matches(day) else None
                if found is not None:
                    return dt.datetime.combine(day, found, tzinfo=dt.UTC)
                day += dt.timedelta(days=1)
        return None

    def _matches(self, day: dt.date) -> bool:
        weekday = (day.weekday() + 1) % 7 + 1  # Python's Monday is 0; EventBridge's SUN is 1
        return (self.days is None or day.day in self.days) and (
            self.weekdays is None or weekday in self.weekdays
        )

    def _on(self, day: dt.date, earliest: dt.time) -> dt.time | None:
        for hour in sorted(self.hours):
            for minute in sorted(self.minutes):
                if (hour, minute) >= (earliest.hour, earliest.minute):
                    return dt.time(hour, minute)
        return None


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def parse_schedule(expression: str, where: str) -> Rate | Cron:
    """The schedule of ``rate(...)`` or ``cron(...)``; :class:`UsageError` naming ``where``."""
    expression = expression.strip()
    rate = RATE.fullmatch(expression)
    if rate is not None:
        value, unit = int(rate.group(1)), rate.group(2)
        if value < 1 or (value == 1) != (not unit.endswith("s")):
            raise UsageError(
                f"{where}: {expression!r}: the unit is singular for 1 and plural above "
                "(rate(1 minute), rate(5 minutes)), as EventBridge requires"
            )
        return Rate(value * UNITS[unit.rstrip("s")])
    cron = CRON.fullmatch(expression)
    if cron is None:
        raise UsageError(
            f"{where}: {expression!r} is not rate(N minute[s]|hour[s]|day[s]) or cron(...)"
        )
    return _cron(cron.group(1).split(), f"{where}: {expression!r}")


def _cron(fields: list[str], where: str) -> Cron:
    if len(fields) != 6:
        raise UsageError(f"{where}: a cron expression has six fields, got {len(fields)}")
    minutes, hours, days, months, weekdays, years = fields
    if (days == "?") == (weekdays == "?"):
        raise UsageError(f"{where}: one of day-of-month and day-of-week must be '?', not both")
    return Cron(
        _field(minutes, 0, 59, where),
        _field(hours, 0, 23, where),
        None if days == "?" else _field(days, 1, 31, where),
        _field(months, 1, 12, where, MONTHS),
        None if weekdays == "?" else _field(weekdays, 1, 7, where, DAYS),
        _field(years, 1970, 2199, where),
    )


def _field(spec: str, low: int, high: int, where: str, names: Sequence[str] = ()) -> frozenset[int]:
    values: set[int] = set()
    for item in spec.upper().split(","):
        span, slash, step = item.partition("/")
        if slash and (not step.isdigit() or int(step) == 0):
            raise UsageError(f"{where}: {item!r}: a step is a positive number")
        ends = (
            [low, high] if span == "*" else [_value(e, names, low, where) for e in span.split("-")]
        )
        if len(ends) > 2 or ends[0] > ends[-1]:
            raise UsageError(f"{where}: {item!r} is not a value or a rising range")
        # "5/15" runs from 5 to the end of the field, every 15; "5" alone is just 5.
        last = ends[-1] if len(ends) == 2 or not slash else high
        values.update(range(ends[0], last + 1, int(step) if slash else 1))
    if min(values) < low or max(values) > high:
        raise UsageError(f"{where}: {spec!r} is not within {low}-{high}")
    return frozenset(values)


def _value(token: str, names: Sequence[str], low: int, where: str) -> int:
    if token in names:
        return list(names).index(token) + low
    if token.isdigit():
        return int(token)
    if any(mark in token for mark in "LW#"):
        raise UsageError(f"{where}: {token!r}: L, W and # are not supported locally")
    raise UsageError(f"{where}: {token!r} is not a number{' or a name' if names else ''}")


# -- firing -----------------------------------------------------------------------------------


def utc_now() -> dt.datetime:
    """The wall clock, in UTC."""
    return dt.datetime.now(dt.UTC)


def scheduled_event(rule_arn: str, due: dt.datetime) -> dict[str, Any]:
    """The event EventBridge sends a function's scheduled rule (no ``Input`` set)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": due.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [rule_arn],
        "detail": {},
    }


class Scheduler:
    """Fires each schedule at its times by ``clock``, a task each, until :meth:`stop`.

    Example::

        scheduler = Scheduler()
        scheduler.start("Nightly", parse_schedule("rate(1 day)", "Nightly"), print)
        ...
        await scheduler.stop()
    """

    def __init__(self, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.clock = clock or utc_now
        self._background = Background()

    def start(self, name: str, schedule: Schedule, fire: Callable[[dt.datetime], None]) -> None:
        """Fire ``fire(due)`` at each of ``schedule``'s times from now on."""
        self._background.spawn(self._run(name, schedule, fire))

    async def _run(
        self, name: str, schedule: Schedule, fire: Callable[[dt.datetime], None]
    ) -> None:
        due = schedule.first(self.clock())
        while due is not None:
            now = self.clock()
            if due > now:
                await asyncio.sleep(min((due - now).total_seconds(), NAP))
                continue
            # Fires missed while the clock jumped (a machine that slept) are not made up: the
            # latest of them fires, once.
            following = schedule.next(due)
            while following is not None and following <= now:
                due, following = following, schedule.next(following)
            try:
                fire(due)
            except Exception:  # one bad fire must not end the schedule
                log.exception("schedule %s failed to fire", name)
            due = following

    async def stop(self) -> None:
        """End every schedule's task."""
        await self._background.cancel()
