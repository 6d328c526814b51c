"""The moto server: SQS, S3, DynamoDB, IAM and more on loopback, and the runtime's client of it.

- ``_moto_server``: :class:`MotoServer` (a real ``moto.server`` process), free ports, waiting
  for a server to answer, fake credentials;
- ``_exact_sqs``: the server's entry point, which serializes moto's SQS backend so it loses,
  duplicates and wrongly dead-letters nothing under concurrency (it runs in the server's process);
- ``_sqs_client``: the runtime's own SQS client of the server (event source polling, destinations).

Standard library only at import: :mod:`aiofanout.testing` re-exports the server helpers without
the ``local`` extra (moto, aioboto3 are imported when a server starts or a client opens).
"""

from ._moto_server import (
    FAKE_CREDENTIALS,
    MotoServer,
    fake_aws_credentials,
    free_port,
    wait_for_http,
)
from ._sqs_client import SqsClient

__all__ = [
    "FAKE_CREDENTIALS",
    "MotoServer",
    "SqsClient",
    "fake_aws_credentials",
    "free_port",
    "wait_for_http",
]
