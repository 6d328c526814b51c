"""Helpers for testing code that uses aiofanout: fake Lambda contexts, SQS events, servers.

With pytest, ``-p aiofanout.testing`` (or ``pytest_plugins`` in the root conftest) adds the
fixtures ``moto_server`` (session-wide) and ``local_aws`` (the embedded stack, per test).

Example::

    from aiofanout.testing import LambdaContext, sqs_event

    def test_worker():
        event = sqs_event([resize.envelope("a.png")])
        assert app.lambda_handler(event, LambdaContext(remaining_ms=30_000)) == {
            "batchItemFailures": []
        }
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = [
    "LambdaContext",
    "MotoServer",
    "fake_aws_credentials",
    "free_port",
    "sqs_event",
    "sqs_record",
    "wait_for_http",
]

#: Credentials that only a local moto server accepts: tests never reach real AWS with them.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

REGION = "us-east-1"
ACCOUNT = "123456789012"


class LambdaContext:
    """A stand-in for the context object Lambda passes a handler, with a deadline that runs.

    Pass ``remaining_ms`` for a deadline that counts down from now in real time, or ``clock``,
    a function returning the remaining milliseconds, to script it.

    Example::

        app.lambda_handler(sqs_event(bodies), LambdaContext(remaining_ms=5_000))
    """

    def __init__(
        self,
        *,
        remaining_ms: int = 900_000,
        clock: Callable[[], int] | None = None,
        function_name: str = "worker",
        memory_limit_in_mb: str = "128",
    ) -> None:
        self._deadline = time.monotonic() + remaining_ms / 1000
        self._clock = clock
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb  # a string, as in awslambdaric
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "test"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation's deadline."""
        if self._clock is not None:
            return self._clock()
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def sqs_record(
    body: str | bytes,
    *,
    queue: str = "work",
    fifo: bool = False,
    receive_count: int = 1,
    group_id: str = "g1",
    message_id: str | None = None,
) -> dict[str, Any]:
    """One record as Lambda's SQS event source delivers it.

    Example::

        event = {"Records": [sqs_record(body, fifo=True, group_id="orders")]}
    """
    text = body.decode() if isinstance(body, bytes) else body
    name = f"{queue}.fifo" if fifo and not queue.endswith(".fifo") else queue
    attributes: dict[str, str] = {
        "ApproximateReceiveCount": str(receive_count),
        "SentTimestamp": str(int(time.time() * 1000)),
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
    }
    if fifo:
        attributes |= {
            "MessageGroupId": group_id,
            "MessageDeduplicationId": hashlib.sha256(text.encode()).hexdigest(),
            "SequenceNumber": str(time.time_ns()),
        }
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "AQEB" + uuid.uuid4().hex,
        "body": text,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(text.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
        "awsRegion": REGION,
    }


def sqs_event(
    bodies: Sequence[str | bytes], *, queue: str = "work", fifo: bool = False
) -> dict[str, Any]:
    """An SQS event source batch of ``bodies``, as Lambda hands it to a handler.

    Example::

        failures = app.lambda_handler(sqs_event([task.envelope(1), b"not json"]), None)
    """
    return {"Records": [sqs_record(b, queue=queue, fifo=fifo) for b in bodies]}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it).

    Example::

        dead_endpoint = f"http://127.0.0.1:{free_port()}"   # nothing listens there
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_http(
    url: str, *, timeout: float = 30.0, process: subprocess.Popen[Any] | None = None
) -> None:
    """Poll ``url`` until it answers any HTTP status; fail early if ``process`` exits.

    Example::

        server = subprocess.Popen([sys.executable, "-m", "my_server", str(port)])
        wait_for_http(f"http://127.0.0.1:{port}/health", process=server)
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"{process.args!r} exited with {process.returncode} before {url} answered"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout} s")
        time.sleep(0.05)


class MotoServer:
    """A real moto server process on 127.0.0.1 and a free port; stopped on exit, also on error.

    Example (a session-wide pytest fixture)::

        @pytest.fixture(scope="session")
        def moto():
            with MotoServer() as server:
                yield server

        async def test_queue(moto):
            session = aioboto3.Session()
            async with session.client("sqs", endpoint_url=moto.endpoint_url) as sqs:
                ...
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        if not host.startswith("127."):
            raise ValueError("MotoServer binds to the loopback range only (127.0.0.0/8)")
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        """The server's URL, for ``endpoint_url=`` of any client."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> MotoServer:
        """Start the process and wait until it answers."""
        env = {**os.environ, **FAKE_CREDENTIALS}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            wait_for_http(f"{self.endpoint_url}/moto-api/", process=self.process)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the process (terminate, then kill if it does not go)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def reset(self) -> None:
        """Forget every resource (queues, functions): ``POST /moto-api/reset``."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def fake_aws_credentials() -> Iterator[None]:
    """Set credentials only moto accepts for the duration (restored afterwards).

    Example::

        with fake_aws_credentials(), MotoServer() as moto:
            boto3.client("sqs", endpoint_url=moto.endpoint_url).list_queues()
    """
    saved = {name: os.environ.get(name) for name in FAKE_CREDENTIALS}
    os.environ.update(FAKE_CREDENTIALS)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _define_fixtures() -> None:
    """Define the pytest fixtures, when pytest and pytest-asyncio are installed."""
    try:
        import pytest
        import pytest_asyncio
    except ImportError:  # pragma: no cover - only without the test tools
        return

    @pytest.fixture(scope="session")
    def moto_server() -> Iterator[MotoServer]:
        """A real moto server for the whole session, with credentials only it accepts."""
        with fake_aws_credentials(), MotoServer() as server:
            yield server

    @pytest_asyncio.fixture
    async def local_aws() -> Any:
        """The embedded stack (moto server + local Lambda runtime) for one test."""
        from .local import stack

        async with stack() as aws:
            yield aws

    globals()["moto_server"] = moto_server
    globals()["local_aws"] = local_aws


_define_fixtures()
