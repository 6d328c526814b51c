"""A local function's environment is what AWS gives a function, through real processes.

Not the environment of the process that runs the local runtime (a token there must not reach
function code), but the function's own variables, the runtime's, and every local endpoint.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from aiofanout import LambdaTarget, Status, TaskFailed, dispatch_many
from aiofanout.local import FunctionConfig, LocalAws
from aiofanout.testing import eventually

# End to end on a local stack of real processes: every test here is slow.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

FUNCTIONS = str(Path(__file__).with_name("lambda_functions"))


def function_target(
    aws: LocalAws,
    handler: str,
    environment: dict[str, str] | None = None,
    reserved_concurrency: int = 10,
    **options: Any,
) -> LambdaTarget:
    """A new function running ``handler`` from tests/lambda_functions, and a target for it."""
    name = f"fn-{uuid.uuid4().hex[:8]}"
    config = FunctionConfig(
        name,
        handler,
        code_paths=[FUNCTIONS],
        environment=environment or {},
        reserved_concurrency=reserved_concurrency,
    )
    aws.add_function(config)
    options.setdefault("task", None)
    return LambdaTarget(
        name, endpoint_url=aws.lambda_endpoint_url, region_name="us-east-1", **options
    )


async def test_a_function_sees_its_variables_and_the_local_endpoints_not_the_runtimes_own(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVELOPER_TOKEN", "ghp-not-for-functions")
    target = function_target(aws, "plain.environ", environment={"MINE": "configured"})
    names = ["DEVELOPER_TOKEN", "MINE", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"]
    result = await dispatch_many(target, [{"names": names}], concurrency=1)
    seen = result[0].value
    assert seen["DEVELOPER_TOKEN"] is None
    assert seen["MINE"] == "configured"
    assert seen["AWS_ENDPOINT_URL_DYNAMODB"] == aws.endpoint_url  # the moto server
    assert seen["AWS_ENDPOINT_URL"] == aws.endpoint_url


@pytest.mark.parametrize("size", [2_000_000, 6_000_000])
async def test_responses_up_to_six_mb_come_back_whole(aws: LocalAws, size: int) -> None:
    target = function_target(aws, "plain.sized")
    result = await dispatch_many(target, [{"bytes": size}], concurrency=1, retry=1)
    assert result[0].value == "x" * size


async def test_a_response_over_six_mb_is_the_function_error_aws_answers(aws: LocalAws) -> None:
    target = function_target(aws, "plain.sized")
    result = await dispatch_many(target, [{"bytes": 7_000_000}], concurrency=1, retry=1)
    error = result[0].error
    assert isinstance(error, TaskFailed)
    assert error.remote_type == "Function.ResponseSizeTooLarge"
    assert "6291556 bytes" in error.message


async def test_a_reply_that_never_comes_ends_the_item_timed_out_without_a_timeout(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiofanout.targets._fanin import Fanin

    monkeypatch.setattr(Fanin, "reply_wait", 1.0)  # the 960 s default, shortened for the test
    target = function_target(  # plain.echo never replies
        aws,
        "plain.echo",
        task="work",
        invocation_type="Event",
        replies=True,
        sqs_endpoint_url=aws.endpoint_url,
    )
    result = await dispatch_many(target, [1], concurrency=1, retry=1)  # no timeout, no deadline
    [outcome] = result
    assert outcome.status is Status.TIMED_OUT
    assert "no reply to envelope" in str(outcome.error)


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example:{port}", "Content-Type": "application/json"},  # DNS rebinding
        {"Origin": "https://evil.example", "Content-Type": "application/json"},  # CSRF
        {"Content-Type": "text/plain"},  # a form a page posts without a preflight
    ],
    ids=["foreign-host", "origin", "text-plain"],
)
async def test_what_a_browser_could_send_creates_no_function(
    aws: LocalAws, headers: dict[str, str]
) -> None:
    import json

    import aiohttp

    port = aws.lambda_endpoint_url.rsplit(":", 1)[1]
    name = f"fn-{uuid.uuid4().hex[:8]}"
    body = json.dumps(
        {
            "FunctionName": name,
            "Runtime": "python3.11",
            "Handler": "plain.echo",
            "Role": "arn:aws:iam::123456789012:role/r",
            "Code": {"ZipFile": ""},
        }
    )
    sent = {k: v.format(port=port) for k, v in headers.items()}
    async with aiohttp.ClientSession() as http:
        url = f"{aws.lambda_endpoint_url}/2015-03-31/functions"
        async with http.post(url, data=body, headers=sent) as response:
            assert response.status in (403, 415)
            assert "x-amzn-ErrorType" in response.headers
        async with http.get(f"{url}/{name}") as response:
            assert response.status == 404  # nothing was created


async def test_with_default_options_a_fan_out_past_reserved_concurrency_finishes_every_item(
    aws: LocalAws,
) -> None:
    target = function_target(aws, "plain.sleep", reserved_concurrency=4)
    items = [{"seconds": 0.05}] * 64
    result = await dispatch_many(target, items, concurrency=32)  # 8x what the function takes
    assert result.counts[Status.SUCCEEDED] == 64, [o.error for o in result if o.error]
    assert sum(o.attempts for o in result) > 64  # it was throttled, and the throttles were free


async def test_another_process_can_neither_take_nor_answer_an_environments_invocation(
    aws: LocalAws,
) -> None:
    import asyncio

    import aiohttp

    target = function_target(aws, "plain.sleep")
    run = asyncio.create_task(dispatch_many(target, [{"seconds": 2}], concurrency=1, retry=1))
    environments = aws.runtime._environments  # white-box: which port the environment polls
    await eventually(lambda: any(e.current is not None for e in environments.by_id.values()))
    [env] = [e for e in environments.by_id.values() if e.current is not None]
    assert env.process is not None
    assert env.current is not None
    base = f"http://127.0.0.1:{env.port}"
    runtime = "/2018-06-01/runtime/invocation"
    forged = f"{runtime}/{env.current.request_id}/response"
    async with aiohttp.ClientSession() as http:
        for path in (f"{runtime}/next", f"/wrong-secret{runtime}/next"):
            async with http.get(base + path, timeout=aiohttp.ClientTimeout(total=5)) as got:
                assert got.status in (403, 404)  # never an invocation's payload
        for path in (forged, f"/wrong-secret{forged}"):
            async with http.post(base + path, json={"forged": True}) as got:
                assert got.status in (403, 404)
    result = await run
    assert result[0].value == "awake"  # the environment's own answer, not the forged one
    # What any process of the same user can read of the environment holds no secret.
    environ = await asyncio.to_thread(Path(f"/proc/{env.process.pid}/environ").read_bytes)
    assert env.secret.encode() not in environ
