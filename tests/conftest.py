"""Shared fixtures: fake AWS credentials, one moto server for the session, the local stack."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from hypothesis import settings

from aiofanout.testing import FAKE_CREDENTIALS, MotoServer

if TYPE_CHECKING:
    from aiofanout.local import LocalAws

# A busy CI machine must not turn a slow example into a failure: no per-example deadline.
settings.register_profile("aiofanout", deadline=None, print_blob=True)
settings.load_profile("aiofanout")

# Tests must never reach real AWS: credentials only moto accepts, and no profile.
os.environ.update(FAKE_CREDENTIALS)
os.environ.pop("AWS_PROFILE", None)


#: The two ways the AWS targets make their calls: the lean path (aiohttp, signed by awscrt) and
#: aioboto3's clients (what ``client=``, ``session=`` or ``AIOFANOUT_AWS_CLIENT=aioboto3`` give).
AWS_CLIENT_PATHS = ("lean", "aioboto3")


@pytest.fixture
def aws_client_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The client path this test's AWS targets take (the default, ``lean``, unless doubled).

    A module that marks its tests ``pytest.mark.usefixtures("aws_client_path")`` runs each of its
    fast tests once per path; its slow (end-to-end) tests run on the lean path only.
    """
    from aiofanout._lean_aws import CLIENT_SWITCH

    path = str(getattr(request, "param", "lean"))
    monkeypatch.setenv(CLIENT_SWITCH, path)
    return path


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "aws_client_path" in metafunc.fixturenames and not metafunc.definition.get_closest_marker(
        "slow"
    ):
        metafunc.parametrize("aws_client_path", AWS_CLIENT_PATHS, indirect=True)


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """One real moto server process for the whole session (SQS, IAM, Lambda API)."""
    with MotoServer() as server:
        yield server


@pytest.fixture
def aioboto3_session() -> Any:
    import aioboto3

    return aioboto3.Session(region_name="us-east-1")


@pytest.fixture
async def sqs(moto: MotoServer, aioboto3_session: Any) -> AsyncIterator[Any]:
    async with aioboto3_session.client("sqs", endpoint_url=moto.endpoint_url) as client:
        yield client


@pytest.fixture
async def queue_url(sqs: Any) -> AsyncIterator[str]:
    """A fresh standard queue, deleted afterwards (queues stay shallow)."""
    url = (await sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:12]}"))["QueueUrl"]
    yield url
    await sqs.delete_queue(QueueUrl=url)


@pytest.fixture
async def fifo_queue_url(sqs: Any) -> AsyncIterator[str]:
    name = f"q-{uuid.uuid4().hex[:12]}.fifo"
    url = (await sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"}))["QueueUrl"]
    yield url
    await sqs.delete_queue(QueueUrl=url)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def aws() -> AsyncIterator[LocalAws]:
    """The embedded local stack (moto server + local Lambda runtime), one per test module.

    Modules that need functions or buckets set up with it define their own ``aws``.
    """
    from aiofanout.local import stack

    async with stack() as local:
        yield local
