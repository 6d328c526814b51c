"""The deadline reaches the worker: carried in the envelope, refused once passed, inherited.

Where the sender waits for the answer, each attempt carries the earlier of its timeout and the
fan-out's deadline (``deadline_ms``, epoch ms); the worker refuses an envelope whose deadline has
passed (``Expired``: it never runs), runs the task under the time that remains, and a dispatch
from inside the task inherits the tighter deadline.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from aiofanout import App, BadSignature, Expired
from aiofanout.wire import decode_task, encode_task


def now_ms() -> int:
    return int(time.time() * 1000)


def test_a_deadline_is_stamped_keeping_an_earlier_one_and_the_signature() -> None:
    from aiofanout._wire import with_deadline

    plain = encode_task("t", [1], {})
    assert decode_task(with_deadline(plain, 5_000, secret=None)).deadline_ms == 5_000
    earlier = encode_task("t", [1], {}, deadline_ms=4_000)
    assert with_deadline(earlier, 5_000, secret=None) is earlier  # the earlier one stays
    later = encode_task("t", [1], {}, deadline_ms=9_000, secret="k")
    stamped = with_deadline(later, 5_000, secret="k")
    assert decode_task(stamped, secret="k").deadline_ms == 5_000  # signed again
    with pytest.raises(BadSignature):
        decode_task(stamped.replace(b"5000", b"9999"), secret="k")
    raw = b'{"not": "an envelope"}'
    assert with_deadline(raw, 5_000, secret=None) == raw


async def test_an_expired_envelope_never_runs() -> None:
    app = App("deadline")
    ran: list[int] = []

    @app.task
    async def record(x: int) -> int:
        ran.append(x)
        return x

    result = await app.run_envelope(encode_task("record", [1], {}, deadline_ms=now_ms() - 1))
    assert isinstance(result.error, Expired)
    assert result.reply.error is not None
    assert result.reply.error.type == "Expired"
    assert ran == []
    fresh = await app.run_envelope(encode_task("record", [2], {}, deadline_ms=now_ms() + 60_000))
    assert fresh.error is None
    assert ran == [2]


async def test_the_task_runs_under_the_time_left_and_hands_the_tighter_deadline_on() -> None:
    app = App("deadline")
    handed: list[dict[str, Any]] = []
    steps: list[str] = []

    @app.task(timeout=0.2)  # tighter than the sender's deadline below
    async def fan(x: int) -> None:
        handed.append(json.loads(child.envelope(x)))
        steps.append("started")
        await asyncio.sleep(30)
        steps.append("finished")  # a side effect after the deadline: must never happen

    @app.task(timeout=120)
    async def child(x: int) -> int:
        return x

    deadline = now_ms() + 5_000
    sent = now_ms()
    started = time.monotonic()
    result = await app.run_envelope(encode_task("fan", [1], {}, deadline_ms=deadline))
    assert isinstance(result.error, TimeoutError)
    assert time.monotonic() - started < 2  # stopped at its 0.2 s timeout, not after 30 s
    assert steps == ["started"]
    [envelope] = handed
    assert envelope["depth"] == 1
    # The tighter of the task's own timeout and the sender's deadline is handed on.
    assert sent + 150 <= envelope["deadline_ms"] <= now_ms()
