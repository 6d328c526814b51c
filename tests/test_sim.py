"""The simulated AWS: Lambda's and SQS's documented rules, driven by the library's own targets.

Everything runs on :class:`aiofanout.sim.VirtualClockLoop`, so each test asserts exact virtual
times and takes milliseconds of real time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import runpy
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from aiofanout import LambdaTarget, SqsTarget, Status, Throttled, dispatch_many
from aiofanout.errors import NotFound, PayloadTooLarge, TaskFailed
from aiofanout.sim import (
    Fixed,
    LogNormal,
    Prices,
    Samples,
    SimulatedAws,
    Uniform,
    run_in_virtual_time,
)

T = TypeVar("T")


def virtual(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return run_in_virtual_time(main())


def now() -> float:
    return asyncio.get_running_loop().time()


# -- Lambda's rules ---------------------------------------------------------------------------


def test_the_ramp_to_10000_environments_takes_what_the_scaling_rate_allows() -> None:
    # 1,000 new environments per function per 10 s, refilled continuously, never accrued: a
    # caller that always wants more gets 1,000 at once and 100 a second after that, so the
    # ten steps of 1,000 to 10,000 end 90 s in, the last step closing at 100 s.
    async def main() -> list[tuple[float, int]]:
        from botocore.exceptions import ClientError

        aws = SimulatedAws(account_concurrency=20_000)
        function = aws.function("f", duration=800, timeout=900)
        client = aws.lambda_client()
        running: list[asyncio.Task[Any]] = []
        seen = []
        for tick in range(1001):
            await asyncio.sleep(tick / 10 - now())
            while function.environments < 10_000:
                call = asyncio.create_task(client.invoke(FunctionName="f", Payload=b"{}"))
                await asyncio.sleep(0)  # the invoke runs up to its admission
                if call.done():
                    with pytest.raises(ClientError) as refused:
                        call.result()
                    assert refused.value.response["Reason"] == "ConcurrentInvocationLimitExceeded"
                    break
                running.append(call)
            seen.append((tick / 10, function.environments))
        for call in running:
            call.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        return seen

    seen = dict(virtual(main))
    assert seen[0.0] == 1000
    for second in range(1, 91):
        assert seen[float(second)] == 1000 + 100 * second
    assert seen[89.9] < 10_000 <= seen[90.0]
    assert seen[100.0] == 10_000


def test_throttles_carry_aws_reasons_through_the_target() -> None:
    async def main() -> dict[str, Any]:
        async with SimulatedAws(account_concurrency=200) as aws:
            aws.function("reserved", duration=1.0, reserved_concurrency=3)
            aws.function("shared", duration=1.0)
            client = aws.lambda_client()
            reasons: dict[str, Any] = {}
            for name, count in (("reserved", 5), ("shared", 199)):
                target = LambdaTarget(name, task=None, client=client)
                result = await dispatch_many(target, range(count), concurrency=count, retry=1)
                errors = [o.error for o in result if o.status is Status.FAILED]
                throttles = [e for e in errors if isinstance(e, Throttled)]
                assert len(throttles) == len(errors)
                reasons[name] = (result.counts[Status.SUCCEEDED], {e.reason for e in throttles})
            return reasons

    reasons = virtual(main)
    assert reasons["reserved"] == (3, {"ReservedFunctionConcurrentInvocationLimitExceeded"})
    # The account's 200 less the 3 reserved: 197 for the functions without a reservation.
    assert reasons["shared"] == (197, {"ConcurrentInvocationLimitExceeded"})


def test_the_invoke_rate_is_ten_a_second_per_reserved_environment() -> None:
    async def main() -> tuple[Any, float]:
        async with SimulatedAws() as aws:
            function = aws.function("quick", duration=0.0, cold_start=0.0, reserved_concurrency=2)
            target = LambdaTarget("quick", task=None, client=aws.lambda_client())
            started = now()
            result = await dispatch_many(target, range(25), concurrency=1, retry=1)
            return (result, function.stats.throttles), now() - started

    (result, throttles), _ = virtual(main)
    assert result.counts[Status.SUCCEEDED] == 20
    assert throttles == {"ReservedFunctionInvocationRateLimitExceeded": 5}


def test_cold_starts_then_warm_reuse_and_the_function_timeout() -> None:
    async def main() -> tuple[list[float], Any, Any]:
        async with SimulatedAws() as aws:
            function = aws.function("f", duration=Samples([0.5, 5.0]), cold_start=0.3, timeout=2)
            target = LambdaTarget("f", task=None, client=aws.lambda_client())
            result = await dispatch_many(target, range(40), concurrency=4, retry=1)
            return [o.elapsed for o in result], result, function.stats

    elapsed, result, stats = virtual(main)
    assert stats.cold_starts == 4  # one per environment, then warm
    assert stats.invocations == 40
    timed_out = [o for o in result if o.status is Status.FAILED]
    assert timed_out
    assert len(timed_out) == stats.timeouts
    assert all(isinstance(o.error, TaskFailed) for o in timed_out)
    assert "Task timed out after 2.00 seconds" in str(timed_out[0].error)
    assert {round(e, 3) for e in elapsed} <= {0.5, 0.8, 2.0, 2.3}


def test_lowering_reserved_concurrency_throttles_new_calls_and_retires_environments() -> None:
    async def main() -> tuple[int, int, dict[str, int]]:
        async with SimulatedAws() as aws:
            function = aws.function("f", duration=1.0, reserved_concurrency=6)
            client = aws.lambda_client()
            target = LambdaTarget("f", task=None, client=client)
            await dispatch_many(target, range(6), concurrency=6)
            await client.put_function_concurrency(FunctionName="f", ReservedConcurrentExecutions=2)
            result = await dispatch_many(target, range(6), concurrency=6, retry=1)
            return result.counts[Status.SUCCEEDED], function.environments, function.stats.throttles

    succeeded, environments, throttles = virtual(main)
    assert succeeded == 2
    assert environments == 2
    assert throttles == {"ReservedFunctionConcurrentInvocationLimitExceeded": 4}


def test_unknown_functions_and_oversized_payloads_are_aws_errors() -> None:
    async def main() -> tuple[Any, Any]:
        async with SimulatedAws() as aws:
            aws.function("f")
            client = aws.lambda_client()
            missing = await dispatch_many(
                LambdaTarget("nope", task=None, client=client), [1], concurrency=1
            )
            big = LambdaTarget("f", task=None, client=client, invocation_type="Event")
            big.payload_limit = 10 * 1024 * 1024  # past the target's own check, to AWS's
            large = await dispatch_many(big, ["x" * (2 * 1024 * 1024)], concurrency=1)
            return missing[0].error, large[0].error

    missing, large = virtual(main)
    assert isinstance(missing, NotFound)
    assert isinstance(large, PayloadTooLarge)


def test_a_handler_answers_and_its_error_is_the_function_error() -> None:
    def handler(event: Any) -> Any:
        if event["n"] == 3:
            raise ValueError("three")
        return event["n"] * 2

    async def main() -> Any:
        async with SimulatedAws() as aws:
            aws.function("f", handler=handler)
            target = LambdaTarget("f", task=None, client=aws.lambda_client())
            return await dispatch_many(target, [{"n": n} for n in range(5)], concurrency=5)

    result = virtual(main)
    assert [o.value for o in result][:3] == [0, 2, 4]
    assert isinstance(result[3].error, TaskFailed)
    assert result[3].error.remote_type == "ValueError"


def test_event_invokes_are_retried_twice_with_aws_waits_then_recorded() -> None:
    async def main() -> tuple[list[dict[str, Any]], float, list[dict[str, Any]], float]:
        async with SimulatedAws() as aws:
            aws.function("failing", duration=1.0, cold_start=0.0, failure_rate=1.0)
            aws.function("starved", reserved_concurrency=0, maximum_event_age=60)
            client = aws.lambda_client()
            for name in ("failing", "starved"):
                target = LambdaTarget(name, task=None, client=client, invocation_type="Event")
                result = await dispatch_many(target, [{"n": 1}], concurrency=1)
                assert result.ok
            started = now()
            await aws.drain()
            return aws.failures("failing"), now() - started, aws.failures("starved"), now()

    failing, took, starved, _ = virtual(main)
    (record,) = failing
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert json.loads(record["requestPayload"]) == {"n": 1}
    # Three runs of 1 s, a minute's wait after the first, two minutes after the second.
    assert took == pytest.approx(1 + 60 + 1 + 120 + 1)
    (aged,) = starved
    assert aged["requestContext"]["condition"] == "EventAgeExceeded"


def test_durations_are_seeded_and_repeat() -> None:
    async def run(seed: int) -> list[float]:
        async with SimulatedAws(seed=seed) as aws:
            aws.function("f", duration=LogNormal(0.2, 0.5), cold_start=Uniform(0.1, 0.4))
            target = LambdaTarget("f", task=None, client=aws.lambda_client())
            result = await dispatch_many(target, range(50), concurrency=5)
            return [o.elapsed for o in result]

    first = run_in_virtual_time(run(7))
    assert first == run_in_virtual_time(run(7))
    assert first != run_in_virtual_time(run(8))
    assert Fixed(0.5).mean == 0.5


# -- SQS and the event source mapping ---------------------------------------------------------


def test_sqs_target_and_mapping_scale_redeliver_and_dead_letter() -> None:
    poison = {"n": -1}
    poisoned: list[str] = []  # each receive of the poison message: its ApproximateReceiveCount

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        failures = []
        for record in event["Records"]:
            if json.loads(record["body"]) == poison:
                poisoned.append(record["attributes"]["ApproximateReceiveCount"])
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    async def main() -> tuple[Any, ...]:
        async with SimulatedAws() as aws:
            function = aws.function("consumer", duration=1.0, cold_start=0.0, handler=handler)
            dead = aws.queue("dead")
            queue = aws.queue("work", visibility_timeout=5, dead_letter=dead, max_receive_count=2)
            mapping = aws.event_source_mapping(queue, function, batch_size=10)
            target = SqsTarget(queue.url, task=None, client=aws.sqs_client())
            items = [{"n": n} for n in range(2000)] + [poison]
            result = await dispatch_many(target, items, concurrency=10)
            concurrency = []
            while len(queue) or queue.in_flight:
                await asyncio.sleep(1)
                concurrency.append(mapping.concurrency)
            return result, concurrency, queue.deleted, len(dead), now()

    result, concurrency, deleted, dead, _ = virtual(main)
    assert result.counts[Status.SUCCEEDED] == 2001
    assert deleted == 2000
    assert dead == 1  # received twice, failed twice: the redrive policy moved it
    assert poisoned == ["1", "2"]
    # Five batches at first, then at most five more a second (300 a minute).
    assert concurrency[0] <= 10
    assert all(b - a <= 5 for a, b in itertools.pairwise(concurrency))
    assert max(concurrency) > 5


# -- the controller against the simulator -----------------------------------------------------


def test_adaptive_settles_on_the_account_when_calls_arrive_out_of_order() -> None:
    # 2,500 calls at once against an account of 500; each call's round trip is drawn, so the
    # far end admits a random 500. The limit must settle at the account, not collapse.
    async def main() -> tuple[Any, dict[str, int], float]:
        async with SimulatedAws(account_concurrency=500, latency=Uniform(0.01, 0.03)) as aws:
            function = aws.function("f", duration=1.0, cold_start=0.0)
            target = LambdaTarget("f", task=None, client=aws.lambda_client())
            started = now()
            result = await dispatch_many(
                target, itertools.repeat(0, 5000), concurrency=2500, adaptive=True
            )
            return result, function.stats.throttles, now() - started

    result, throttles, took = virtual(main)
    assert result.ok
    assert result.limit is not None
    assert result.limit.min >= 500
    assert result.limit.final <= 510
    assert sum(throttles.values()) < 2050  # the opening burst, and a few probes
    assert took < 10 * 1.02 + 1  # ten rounds of a second at the account's 500


def test_adaptive_climbs_back_fast_when_the_capacity_grows() -> None:
    # Reserved concurrency 50, raised to 400 after 10 s: by one a window (half a second here)
    # the limit would need three minutes to follow. The probe at 51 holds once its patience
    # (8 windows, grown while 50 held) is spent; then, doubling, about a dozen windows.
    async def main() -> tuple[Any, list[int]]:
        async with SimulatedAws() as aws:
            aws.function("f", duration=0.5, cold_start=0.0, reserved_concurrency=50)
            client = aws.lambda_client()
            target = LambdaTarget("f", task=None, client=client)
            seen: list[Any] = []

            async def raise_it() -> None:
                await asyncio.sleep(10)
                await client.put_function_concurrency(
                    FunctionName="f", ReservedConcurrentExecutions=400
                )

            raising = asyncio.create_task(raise_it())
            result = await dispatch_many(
                target, itertools.repeat(0, 6000), concurrency=1000, adaptive=True,
                on_progress=seen.append,
            )  # fmt: skip
            await raising
            limits = [p.limit.current for p in seen if p.limit is not None and p.elapsed >= 22]
            return result, limits

    result, limits = virtual(main)
    assert result.ok
    assert limits
    assert min(limits) >= 350  # 12 s after the raise the limit is near 400


# -- the planner ------------------------------------------------------------------------------


def plan(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    """``python -m aiofanout plan ... --json``, in this process."""
    argv = sys.argv
    sys.argv = ["aiofanout", "plan", *args, "--json", "--no-progress"]
    try:
        with pytest.raises(SystemExit) as exited:
            runpy.run_module("aiofanout", run_name="__main__")
    finally:
        sys.argv = argv
    assert exited.value.code == 0
    answer: dict[str, Any] = json.loads(capsys.readouterr().out)
    return answer


def test_plan_predicts_the_closed_form(capsys: pytest.CaptureFixture[str]) -> None:
    # N items of d seconds at concurrency C, warm, no round trip, no throttling: N * d / C.
    answer = plan(
        capsys, "--items", "5000", "--duration", "0.5", "--concurrency", "250",
        "--latency", "0", "--cold-start", "0", "--memory", "1024",
    )  # fmt: skip
    assert answer["wall_seconds"] == pytest.approx(5000 * 0.5 / 250, rel=0.001)
    assert answer["succeeded"] == 5000
    assert answer["peak_concurrency"] == 250
    assert answer["throttles"] == answer["failed"] == answer["retries"] == 0
    gb_seconds = 5000 * 0.5 * 1024 / 1024
    expected = 5000 * Prices().lambda_request + gb_seconds * Prices().gb_second_x86_64
    assert answer["cost_usd"] == pytest.approx(expected, rel=1e-4)


def test_plan_is_seeded_prices_are_overridable_and_the_svg_is_drawn(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = ["--items", "1500", "--duration", "0.2", "--distribution", "lognormal"]
    args += ["--concurrency", "300", "--reserved-concurrency", "100", "--adaptive"]
    first = plan(capsys, *args, "--seed", "4", "--svg", str(tmp_path / "plan.svg"))
    again = plan(capsys, *args, "--seed", "4", "--price-gb-second", "0")
    for answer in (first, again):
        answer.pop("simulated_in_seconds")
        answer["scenario"].pop("price_gb_second")
    assert first["throttles"] > 0
    assert first["throttles_by_reason"].keys() == {
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    }
    assert first["peak_concurrency"] == 100
    assert again["cost_breakdown_usd"]["duration"] == 0
    for answer in (first, again):
        answer.pop("cost_usd")
        answer.pop("cost_breakdown_usd")
        answer.pop("prices_usd")
    assert first == again
    svg = (tmp_path / "plan.svg").read_text()
    assert svg.startswith("<svg")
    assert svg.count("<polyline") == 3


EVENT_PLAN = ["--items", "2000", "--duration", "0.5", "--concurrency", "200", "--target", "event"]
EVENT_PLAN += ["--account-concurrency", "100", "--failure-rate", "0.1", "--seed", "3"]


def test_plan_event_hands_every_item_over_fast_and_its_queue_runs_and_retries_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = plan(capsys, *EVENT_PLAN)
    events = first["events"]
    assert events["handed_over"] == first["succeeded"] == 2000
    assert first["failed"] == first["timed_out"] == 0
    # Handing over is quicker than the runs: 2,000 x 0.5 s at the account's 100 takes >= 10 s.
    assert first["sender_seconds"] < 10 <= first["wall_seconds"]
    # 200 senders at a 20 ms round trip pass the account's 1,000 invokes a second: 429s the
    # engine retried; inside the queue, the 429s of no free concurrency.
    assert events["sender_throttles"] == first["retries"] > 0
    assert first["throttles_by_reason"]["CallerRateLimitExceeded"] == events["sender_throttles"]
    assert (
        events["queue_throttles"]
        == (first["throttles_by_reason"]["ConcurrentInvocationLimitExceeded"])
    )
    assert events["queue_throttles"] > 0
    # About a tenth of the runs fail; Lambda retries each failed event twice, then drops it.
    assert 150 < events["retried"] < 300
    exhausted = events["dropped_by_condition"].get("RetriesExhausted", 0)
    assert events["ran"] + events["dropped"] == 2000
    assert first["invocations"] == events["ran"] + events["retried"] + exhausted
    # Every run, retries included, is a billed request.
    requests = first["invocations"] * Prices().lambda_request
    assert first["cost_breakdown_usd"]["requests"] == pytest.approx(requests, abs=1e-6)
    again = plan(capsys, *EVENT_PLAN)
    for answer in (first, again):
        answer.pop("simulated_in_seconds")
    assert first == again


def test_plan_event_drops_the_events_past_their_age_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--items", "50", "--concurrency", "10", "--target", "event"]
    args += ["--reserved-concurrency", "0", "--maximum-event-age", "60"]
    answer = plan(capsys, *args)
    assert answer["events"]["dropped_by_condition"] == {"EventAgeExceeded": 50}
    assert answer["events"]["ran"] == answer["invocations"] == 0
    assert answer["wall_seconds"] > 60
    argv = sys.argv
    sys.argv = ["aiofanout", "plan", *args, "--no-progress"]
    try:
        with pytest.raises(SystemExit):
            runpy.run_module("aiofanout", run_name="__main__")
    finally:
        sys.argv = argv
    text = capsys.readouterr().out
    assert "handed over      50 events" in text
    assert "EventAgeExceeded: 50" in text
    sys.argv = ["aiofanout", "plan", *args, "--maximum-retry-attempts", "3", "--no-progress"]
    try:
        with pytest.raises(SystemExit) as exited:
            runpy.run_module("aiofanout", run_name="__main__")
    finally:
        sys.argv = argv
    assert exited.value.code == 2
    assert "--maximum-retry-attempts is 0, 1 or 2" in capsys.readouterr().err


def test_the_timeline_counts_from_the_first_request_on_a_real_loop() -> None:
    aws = SimulatedAws()  # made outside any loop
    aws.function("f", duration=0.01, cold_start=0.0)

    async def main() -> None:
        target = LambdaTarget("f", task=None, client=aws.lambda_client())
        await dispatch_many(target, range(4), concurrency=2)

    asyncio.run(main())  # real time: the loop's clock is the machine's, far from 0
    assert aws.timeline.seconds == 1
    assert aws.timeline.completed == [4]
    assert aws.timeline.busy == [2]
