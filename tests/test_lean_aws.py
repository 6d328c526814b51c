"""The lean path to Lambda and SQS: its signature, credentials, endpoints and errors.

The targets' behaviour on both client paths is in ``test_targets.py``, ``test_fanin.py`` and
``test_target_conformance.py`` (their fast tests run once per path); here is what only the lean
path has: AWS's published SigV4 vectors, botocore's signer on the same requests, moto checking
the signature, refreshing credentials, botocore's endpoint resolution.
"""

from __future__ import annotations

import datetime
import json
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiohttp import web

from aiofanout import LambdaTarget, SqsTarget, dispatch_many
from aiofanout._lean_aws import (
    AwsEndpoint,
    BotocoreSigner,
    CrtSigner,
    LeanClient,
    LeanLambda,
    _client,
    default_signer,
    resolve_endpoint,
)
from aiofanout.errors import AccessDenied
from aiofanout.testing import MotoServer

from .stubs import StubServer, lambda_ok

VECTORS = Path(__file__).with_name("sigv4_vectors")
VECTOR_DATE = datetime.datetime(2015, 8, 30, 12, 36, tzinfo=datetime.UTC)
REGION = "us-east-1"


def vector_credentials(token: str | None = None) -> Any:
    from botocore.credentials import Credentials

    return Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)


def parse_vector(text: str) -> tuple[str, str, dict[str, str], bytes]:
    head, _, body = text.partition("\n\n")
    request_line, *header_lines = head.split("\n")
    method, target, _ = request_line.split(" ")
    headers = dict(line.split(":", 1) for line in header_lines)
    return method, target, headers, body.encode()


Request = tuple[str, str, dict[str, str], bytes]  # method, URL, headers, body


def botocore_sign_at(
    when: datetime.datetime, service: str, request: Request, credentials: Any
) -> dict[str, str]:
    """Sign with botocore's ``SigV4Auth``, its clock (read once per signature) at ``when``."""
    with mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
        return BotocoreSigner(service, REGION).sign(*request, credentials)


def vector_names() -> list[str]:
    return sorted(path.stem for path in VECTORS.glob("*.req"))


@pytest.mark.parametrize("signer", ["awscrt", "botocore"])
@pytest.mark.parametrize("name", vector_names())
def test_both_signers_match_aws_published_sigv4_vectors(name: str, signer: str) -> None:
    method, target, headers, body = parse_vector((VECTORS / f"{name}.req").read_text())
    del headers["X-Amz-Date"]  # the signer adds it, from the time of signing
    credentials = vector_credentials(headers.pop("X-Amz-Security-Token", None))
    request: Request = (method, f"https://example.amazonaws.com{target}", headers, body)
    if signer == "awscrt":
        signed = CrtSigner("service", REGION).sign(*request, credentials, now=VECTOR_DATE)
    else:
        signed = botocore_sign_at(VECTOR_DATE, "service", request, credentials)
    assert signed["Authorization"] == (VECTORS / f"{name}.authz").read_text().strip()


LEAN_REQUESTS = [
    pytest.param(
        "lambda",
        "POST",
        "https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/"
        "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aworker/invocations"
        "?Qualifier=live",
        {"host": "lambda.us-east-1.amazonaws.com", "x-amz-invocation-type": "Event"},
        json.dumps({"task": "résumé", "args": [1, 2]}).encode(),
        id="invoke-an-arn-with-a-qualifier",
    ),
    pytest.param(
        "sqs",
        "POST",
        "http://127.0.0.1:4566/",
        {
            "host": "127.0.0.1:4566",
            "content-type": "application/x-amz-json-1.0",
            "x-amz-target": "AmazonSQS.SendMessageBatch",
            "x-amzn-query-mode": "true",
        },
        b'{"QueueUrl":"http://127.0.0.1:4566/1/q","Entries":[{"Id":"0","MessageBody":"{}"}]}',
        id="send-message-batch-to-a-local-port",
    ),
]


@pytest.mark.parametrize("token", [None, "session-token/of+a=lambda"])
@pytest.mark.parametrize(("service", "method", "url", "headers", "body"), LEAN_REQUESTS)
def test_awscrt_signs_the_lean_requests_as_botocore_does(
    service: str, method: str, url: str, headers: dict[str, str], body: bytes, token: str | None
) -> None:
    credentials = vector_credentials(token)
    now = datetime.datetime(2026, 12, 4, 19, 30, 5, tzinfo=datetime.UTC)
    crt = CrtSigner(service, REGION).sign(method, url, headers, body, credentials, now=now)
    ours = botocore_sign_at(now, service, (method, url, headers, body), credentials)
    assert crt["Authorization"] == ours["Authorization"]
    assert crt.get("X-Amz-Security-Token") == token


def test_without_awscrt_the_botocore_signer_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_signer("sqs", REGION).name == "awscrt"
    monkeypatch.setitem(sys.modules, "awscrt", None)  # import awscrt now raises ImportError
    assert isinstance(default_signer("sqs", REGION), BotocoreSigner)


# -- moto checks the signature ----------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_checking_signatures() -> Iterator[tuple[MotoServer, dict[str, str]]]:
    """A moto server of its own with its signature check on, and an IAM user's key for it.

    Server-wide (``/moto-api/reset-auth``), so not the session's shared server.
    """
    import boto3

    with MotoServer() as server:
        iam = boto3.client("iam", endpoint_url=server.endpoint_url, region_name=REGION)
        iam.create_user(UserName="fanout")
        allow = {"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}
        policy = {"Version": "2012-10-17", "Statement": [allow]}
        iam.put_user_policy(UserName="fanout", PolicyName="sqs", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="fanout")["AccessKey"]
        sqs = boto3.client(
            "sqs",
            endpoint_url=server.endpoint_url,
            region_name=REGION,
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        )
        url = sqs.create_queue(QueueName=f"signed-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        # Every request from now on is authenticated (a form content type would hide the body).
        on = urllib.request.Request(
            f"{server.endpoint_url}/moto-api/reset-auth",
            data=b"0",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(on).close()
        yield (
            server,
            {
                "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
                "queue_url": url,
            },
        )


@pytest.mark.parametrize("signer", ["awscrt", "botocore"])
async def test_moto_accepts_what_the_lean_path_signs_and_refuses_a_wrong_key(
    moto_checking_signatures: tuple[MotoServer, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    signer: str,
) -> None:
    server, user = moto_checking_signatures
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", user["AWS_ACCESS_KEY_ID"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", user["AWS_SECRET_ACCESS_KEY"])
    monkeypatch.delenv("AWS_SESSION_TOKEN")  # an IAM user's key: no session
    if signer == "botocore":
        monkeypatch.setattr(_client, "default_signer", BotocoreSigner)
    target = SqsTarget(user["queue_url"], task=None, endpoint_url=server.endpoint_url)
    result = await dispatch_many(target, [{"n": i} for i in range(12)], concurrency=2)
    assert result.ok, result.errors()

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-key")
    refused = await dispatch_many(target, [{"n": 0}], concurrency=1, retry=1)
    error = refused[0].error
    assert isinstance(error, AccessDenied)
    # moto answers this JSON-protocol call in XML: both clients take the text as the message.
    assert "<Code>SignatureDoesNotMatch</Code>" in str(error)


# -- credentials and endpoints as botocore resolves them --------------------------------------


async def test_refreshing_credentials_are_read_for_every_request() -> None:
    from botocore.credentials import RefreshableCredentials

    start = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.UTC)
    clock = [start]
    hour = datetime.timedelta(hours=1)
    refreshed_on: list[threading.Thread] = []

    def refresh() -> dict[str, str]:
        refreshed_on.append(threading.current_thread())  # botocore's refresh blocks
        expiry = (clock[0] + hour).isoformat()
        return {"access_key": "AKIDSECOND", "secret_key": "s", "token": "t", "expiry_time": expiry}

    credentials = RefreshableCredentials(
        "AKIDFIRST",
        "secret",
        "token",
        start + hour,
        refresh_using=refresh,
        method="test",
        time_fetcher=lambda: clock[0],
    )
    seen: list[str] = []

    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        seen.append(request.headers["Authorization"].split("Credential=")[1].split("/")[0])
        return web.json_response({})

    async with StubServer(handle) as stub:
        endpoint = AwsEndpoint(stub.url, REGION, "lambda", credentials)
        client = LeanLambda(LeanClient(endpoint, pool=1, read_timeout=5, connect_timeout=5))
        async with client:
            await client.invoke(FunctionName="fn", Payload=b"{}")
            clock[0] += hour  # the first credentials have expired: the next read refreshes
            await client.invoke(FunctionName="fn", Payload=b"{}")
    assert seen == ["AKIDFIRST", "AKIDSECOND"]
    assert len(refreshed_on) == 1
    assert refreshed_on[0] is not threading.main_thread()  # the refresh ran off the loop


@pytest.mark.parametrize(
    ("environment", "endpoint"),
    [
        ({}, "https://lambda.eu-west-1.amazonaws.com"),
        ({"AWS_ENDPOINT_URL_LAMBDA": "http://127.0.0.1:9001"}, "http://127.0.0.1:9001"),
        ({"AWS_USE_FIPS_ENDPOINT": "true"}, "https://lambda-fips.eu-west-1.amazonaws.com"),
        ({"AWS_USE_DUALSTACK_ENDPOINT": "true"}, "https://lambda.eu-west-1.api.aws"),
    ],
    ids=["regional", "AWS_ENDPOINT_URL_LAMBDA", "FIPS", "dual-stack"],
)
def test_endpoints_are_resolved_as_botocore_resolves_them(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], endpoint: str
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    resolved = resolve_endpoint("lambda", endpoint_url=None, region_name="eu-west-1")
    assert resolved.url == endpoint
    assert (resolved.region, resolved.signing_name) == ("eu-west-1", "lambda")
    assert resolved.credentials.get_frozen_credentials().access_key == "testing"


async def test_session_or_the_switch_keep_aioboto3_and_the_default_is_the_lean_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aioboto3

    def target(**kwargs: Any) -> LambdaTarget:
        return LambdaTarget("fn", task=None, endpoint_url=stub.url, region_name=REGION, **kwargs)

    async with StubServer(lambda_ok()) as stub:
        lean, given = target(), target(session=aioboto3.Session())
        async with lean.opened(concurrency=1), given.opened(concurrency=1):
            assert isinstance(lean.client, LeanLambda)
            assert not isinstance(given.client, LeanLambda)
        monkeypatch.setenv("AIOFANOUT_AWS_CLIENT", "aioboto3")
        switched = target()
        async with switched.opened(concurrency=1):
            assert not isinstance(switched.client, LeanLambda)
