"""The account's unreserved concurrency, enforced at invoke time across functions.

What AWS does, from the Lambda developer guide: functions without reserved concurrency share
the account's concurrency less every reservation ("Lambda concurrency": "unreserved account
concurrency"); past it a synchronous invoke is 429 ``TooManyRequestsException`` with ``Reason:
ConcurrentInvocationLimitExceeded`` (the Invoke API reference lists the reasons), while an
asynchronous event is returned to its queue and retried ("How Lambda handles errors and
retries with asynchronous invocation": "For throttling errors (429) ... Lambda returns the
event to the queue"). A function with its own reservation is not touched by the shared pool.

A small account (3 concurrent executions, 1 left unreserved at least): one function reserves
1, so two functions without a reservation share 2. Their handler is held at a gate (a file the
test creates), so the test waits on conditions, never on time.
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from botocore.config import Config
from botocore.exceptions import ClientError

from aiofanout import LambdaTarget, Retry, Throttled, dispatch_many
from aiofanout.local import AccountLimits, LocalAws, stack
from aiofanout.testing import eventually

from .control_plane_helpers import call, client, unique

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

ACCOUNT = AccountLimits(concurrency=3, minimum_unreserved=1)
ACCOUNT_LIMIT = "ConcurrentInvocationLimitExceeded"
GATED = """
import os, time

def handler(event, context):
    gate = event.get("gate")
    while gate and not os.path.exists(gate):
        time.sleep(0.01)
    return {"function": context.function_name}
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def aws() -> AsyncIterator[LocalAws]:
    async with stack(account=ACCOUNT) as local:
        yield local


@pytest.fixture(scope="module")
def lam(aws: LocalAws) -> Any:
    return client("lambda", aws.lambda_endpoint_url)


async def create(lam: Any, *, reserve: int | None = None) -> str:
    """A function of the gated handler (``CreateFunction``: no reservation unless ``reserve``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", GATED)
    name = unique()
    await call(
        lam.create_function,
        FunctionName=name,
        Runtime="python3.11",
        Role="arn:aws:iam::123456789012:role/lambda-role",
        Handler="app.handler",
        Code={"ZipFile": buffer.getvalue()},
        Timeout=30,
    )
    if reserve is not None:
        await call(
            lam.put_function_concurrency, FunctionName=name, ReservedConcurrentExecutions=reserve
        )
    return name


def busy(aws: LocalAws, name: str) -> int:
    """Environments of ``name`` running an invocation now."""
    members = aws.runtime.functions.get(name).pool.members.values()
    return sum(env.current is not None for env in members)


async def test_the_unreserved_pool_is_shared_across_functions(
    aws: LocalAws, lam: Any, aioboto3_session: Any, tmp_path: Path
) -> None:
    first, second = await create(lam), await create(lam)
    reserving = await create(lam, reserve=1)
    settings = await call(lam.get_account_settings)
    assert settings["AccountLimit"]["UnreservedConcurrentExecutions"] == 2
    gate = tmp_path / "open"
    held = json.dumps({"gate": str(gate)}).encode()
    holding = [asyncio.ensure_future(aws.runtime.invoke(name, held)) for name in (first, second)]
    await eventually(lambda: busy(aws, first) == 1 and busy(aws, second) == 1, timeout=20)

    # The pool is full: a third invoke of either function is AWS's account-level 429.
    once = Config(retries={"total_max_attempts": 1})  # botocore retries a 429 by default
    lambda_client = aioboto3_session.client(
        "lambda", endpoint_url=aws.lambda_endpoint_url, config=once
    )
    async with lambda_client as alam:
        for name in (first, second):
            with pytest.raises(ClientError) as refused:
                await alam.invoke(FunctionName=name, Payload=b"{}")
            error = refused.value.response
            assert error["Error"]["Code"] == "TooManyRequestsException"
            assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
            assert error["Reason"] == ACCOUNT_LIMIT
        target = LambdaTarget(
            second, task=None, endpoint_url=aws.lambda_endpoint_url, region_name="us-east-1"
        )
        result = await dispatch_many(target, [{}], concurrency=1, retry=Retry(attempts=1))
        [failure] = result.failures()
        assert isinstance(failure.error, Throttled)
        assert failure.error.reason == ACCOUNT_LIMIT

        # A reservation is its own: it runs while the shared pool is full.
        answer = await alam.invoke(FunctionName=reserving, Payload=b"{}")
        assert json.loads(await answer["Payload"].read()) == {"function": reserving}

        # An Event invoke is queued, not failed, and does not run beyond the pool.
        queued = await alam.invoke(FunctionName=first, InvocationType="Event", Payload=b"{}")
        assert queued["StatusCode"] == 202
        await eventually(lambda: aws.runtime.unreserved.waiting == 1)
        assert busy(aws, first) == 1
        assert aws.runtime.unreserved.busy == 2

        gate.touch()  # the held invocations end: their slots are free again
        for invocation in holding:
            assert json.loads((await invocation).body)["function"] in (first, second)
        await eventually(lambda: aws.runtime.stats(first)["invocations"] == 2)
        answer = await alam.invoke(FunctionName=second, Payload=b"{}")
        assert json.loads(await answer["Payload"].read()) == {"function": second}
    await eventually(lambda: aws.runtime.unreserved.busy == 0)
