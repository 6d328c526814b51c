"""A real moto server on loopback, and what it takes to talk to it safely.

moto stands in for SQS, S3 and IAM (its Lambda runs no code without Docker; the local runtime
does that). Standard library only: :mod:`aiofanout.testing` re-exports these without the
``local`` extra (starting the server itself needs ``moto[server]``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from ..._errors import UsageError
from .._account import REGION

#: Where the server finds the local runtime's Invoke API (read by ``_sns_deliveries.py``).
LAMBDA_ENDPOINT_VARIABLE = "AIOFANOUT_LAMBDA_ENDPOINT"

#: Credentials that only a local moto server accepts: tests never reach real AWS with them.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it).

    Example::

        dead_endpoint = f"http://127.0.0.1:{free_port()}"   # nothing listens there
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _refuse_if_in_use(host: str, port: int) -> None:
    """A :class:`UsageError` if something listens on ``host:port`` already.

    Without it a new server would fail to bind while the old one answered in its place, with
    the old one's state.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Connections of a server gone in TIME_WAIT are no listener: only a live one refuses.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UsageError(
                f"port {port} on {host} is in use (an earlier moto server still running?): "
                "stop what listens there, or pick another port (--moto-port), or leave it out "
                "for a free one"
            ) from exc


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

    Its SQS is exact under concurrent senders, receivers and deleters (``exact_sqs=False`` runs
    moto's own, which is not). With ``lambda_endpoint_url`` (the local runtime's Invoke API),
    SNS messages for Lambda subscriptions are invoked there (``Event``, in AWS's SNS event
    format) instead of in moto's own Lambda, which runs no code.

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

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        exact_sqs: bool = True,
        lambda_endpoint_url: str | None = None,
    ) -> None:
        if not host.startswith("127."):
            raise ValueError("MotoServer binds to the loopback range only (127.0.0.0/8)")
        self.host = host
        self.port = port or free_port(host)
        # moto's own SQS is not thread-safe and its server answers on threads: it loses,
        # duplicates and wrongly dead-letters messages under concurrent consumers. The entry
        # point below serializes the SQS backend first (see _exact_sqs.py, beside this module).
        self.module = "aiofanout.local._moto._exact_sqs" if exact_sqs else "moto.server"
        self.lambda_endpoint_url = lambda_endpoint_url
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        """The server's URL, for ``endpoint_url=`` of any client."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> MotoServer:
        """Start the process and wait until it answers."""
        _refuse_if_in_use(self.host, self.port)
        # The server exits when this process dies, however it dies (see exit_with_parent).
        env = {**os.environ, **FAKE_CREDENTIALS, "AIOFANOUT_PARENT_PID": str(os.getpid())}
        env.pop(LAMBDA_ENDPOINT_VARIABLE, None)
        if self.lambda_endpoint_url is not None:
            env[LAMBDA_ENDPOINT_VARIABLE] = self.lambda_endpoint_url
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, "-H", self.host, "-p", str(self.port)],
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
