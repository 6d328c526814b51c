"""The local Lambda's control plane through boto3, against AWS's API as botocore models it.

Routes, status codes, member names and error codes come from botocore's service model for
``lambda`` 2015-03-31 (``botocore/data/lambda/2015-03-31/service-2.json``) and the Lambda API
reference (docs.aws.amazon.com/lambda/latest/api/); each test says what it relies on.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from aiofanout.local import FunctionConfig, LocalAws, stack
from aiofanout.testing import eventually

from .control_plane_helpers import call, client, receive, unique, zipped

# End to end on a local stack of real processes: every test here is slow.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

FUNCTIONS = str(Path(__file__).with_name("lambda_functions"))
ROLE = "arn:aws:iam::123456789012:role/lambda-role"


@pytest.fixture(scope="module")
def lam(aws: LocalAws) -> Any:
    return client("lambda", aws.lambda_endpoint_url)


async def create(lam: Any, name: str | None = None, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("Code", {"ZipFile": zipped()})
    kwargs.setdefault("Runtime", "python3.11")
    kwargs = {"Role": ROLE, "Handler": "app.handler", **kwargs}
    return dict(await call(lam.create_function, FunctionName=name or unique(), **kwargs))


async def invoke(lam: Any, name: str, event: Any = None, **kwargs: Any) -> Any:
    response = await call(lam.invoke, FunctionName=name, Payload=json.dumps(event or {}), **kwargs)
    return json.loads(response["Payload"].read()), response


def error_code(exc: Any) -> str:
    return str(exc.value.response["Error"]["Code"])


# -- functions -------------------------------------------------------------------------------


async def test_create_function_answers_its_configuration_and_the_function_runs(lam: Any) -> None:
    code = zipped("1")
    created = await create(
        lam,
        Code={"ZipFile": code},
        Timeout=7,
        MemorySize=256,
        Environment={"Variables": {"GREETING": "hi"}},
        Description="d",
    )
    # CreateFunction: POST /2015-03-31/functions, 201, FunctionConfiguration (service model).
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    name = created["FunctionName"]
    assert created["FunctionArn"] == f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    assert (created["Runtime"], created["Handler"], created["Role"]) == (
        "python3.11",
        "app.handler",
        ROLE,
    )
    assert (created["Timeout"], created["MemorySize"], created["Version"]) == (7, 256, "$LATEST")
    assert created["Environment"] == {"Variables": {"GREETING": "hi"}}
    # CodeSha256 is the base64 SHA-256 of the deployment package; CodeSize its bytes (API ref).
    assert created["CodeSha256"] == base64.b64encode(hashlib.sha256(code).digest()).decode()
    assert created["CodeSize"] == len(code)
    # A new function is Pending, then Active (Lambda guide, "Lambda function states").
    assert (created["State"], created["StateReasonCode"]) == ("Pending", "Creating")
    await call(lam.get_waiter("function_active_v2").wait, FunctionName=name)
    assert (await invoke(lam, name))[0] == {"version": "1", "greeting": "hi"}


async def test_list_functions_pages_with_marker_and_max_items(lam: Any) -> None:
    names = {(await create(lam))["FunctionName"] for _ in range(3)}
    # ListFunctions: MaxItems and Marker in, NextMarker out while more remain (API reference).
    first = await call(lam.list_functions, MaxItems=2)
    assert len(first["Functions"]) == 2
    assert "NextMarker" in first
    seen = {f["FunctionName"] for f in first["Functions"]}
    marker = first["NextMarker"]
    while marker:
        more = await call(lam.list_functions, MaxItems=2, Marker=marker)
        seen |= {f["FunctionName"] for f in more["Functions"]}
        marker = more.get("NextMarker")
    assert names <= seen


async def test_get_list_update_and_delete_a_function(lam: Any) -> None:
    name = (await create(lam))["FunctionName"]
    got = await call(lam.get_function, FunctionName=name)
    # GetFunctionResponse: Configuration, Code.RepositoryType/Location (service model).
    assert got["Configuration"]["FunctionName"] == name
    assert got["Code"]["RepositoryType"] == "S3"
    assert "Concurrency" not in got  # nothing reserved yet
    config = await call(lam.get_function_configuration, FunctionName=name, Qualifier="$LATEST")
    assert config["CodeSha256"] == got["Configuration"]["CodeSha256"]
    pages = lam.get_paginator("list_functions").paginate()
    listed = await call(lambda: [f["FunctionName"] for p in pages for f in p["Functions"]])
    assert name in listed
    updated = await call(
        lam.update_function_configuration,
        FunctionName=name,
        Timeout=9,
        Environment={"Variables": {"GREETING": "hello"}},
    )
    assert updated["Timeout"] == 9
    assert updated["RevisionId"] != config["RevisionId"]
    assert (await invoke(lam, name))[0]["greeting"] == "hello"  # a new environment, new config
    recoded = await call(lam.update_function_code, FunctionName=name, ZipFile=zipped("2"))
    assert recoded["CodeSha256"] != config["CodeSha256"]
    assert (await invoke(lam, name))[0]["version"] == "2"
    # DeleteFunction: DELETE /2015-03-31/functions/{FunctionName}, 204 (service model).
    deleted = await call(lam.delete_function, FunctionName=name)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        await call(lam.get_function, FunctionName=name)


async def test_a_busy_environment_finishes_on_the_old_code_and_retires(
    aws: LocalAws, lam: Any
) -> None:
    name = (await create(lam, Timeout=30))["FunctionName"]
    slow = aws.runtime.invoke(name, json.dumps({"sleep": 1.5}).encode())

    running = asyncio.ensure_future(slow)
    function = aws.runtime.functions.get(name)
    await eventually(lambda: any(env.current for env in function.pool.members.values()))
    await call(lam.update_function_code, FunctionName=name, ZipFile=zipped("2"))
    old = json.loads((await running).body)
    assert old["version"] == "1"  # it finished where it started
    assert (await invoke(lam, name))[0]["version"] == "2"
    assert len(function.pool.members) == 1  # the old environment retired


async def test_code_from_s3_on_the_moto_server(aws: LocalAws, lam: Any) -> None:
    s3 = client("s3", aws.endpoint_url)
    bucket = unique("code")
    await call(s3.create_bucket, Bucket=bucket)
    await call(s3.put_object, Bucket=bucket, Key="app.zip", Body=zipped("s3"))
    name = (await create(lam, Code={"S3Bucket": bucket, "S3Key": "app.zip"}))["FunctionName"]
    assert (await invoke(lam, name))[0]["version"] == "s3"
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        await create(lam, Code={"S3Bucket": bucket, "S3Key": "missing.zip"})


async def test_create_errors_as_aws_answers_them(lam: Any) -> None:
    name = (await create(lam))["FunctionName"]
    # ResourceConflictException (409): "The resource already exists" (service model).
    with pytest.raises(lam.exceptions.ResourceConflictException):
        await create(lam, name)
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="python3"):
        await create(lam, Runtime="nodejs20.x")
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="unzip"):
        await create(lam, Code={"ZipFile": b"not a zip"})


async def test_an_unknown_qualifier_is_not_found_naming_the_arn(lam: Any) -> None:
    name = (await create(lam))["FunctionName"]
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as caught:
        await call(lam.get_function, FunctionName=name, Qualifier="7")
    assert f":function:{name}:7" in caught.value.response["Error"]["Message"]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        await call(lam.invoke, FunctionName=f"{name}:live", Payload=b"{}")


async def test_a_function_added_from_python_is_the_one_the_api_sees(
    aws: LocalAws, lam: Any
) -> None:
    name = unique()
    aws.add_function(FunctionConfig(name, "plain.echo", code_paths=[FUNCTIONS], timeout=4))
    config = await call(lam.get_function_configuration, FunctionName=name)
    assert (config["Handler"], config["Timeout"]) == ("plain.echo", 4)
    await call(lam.update_function_configuration, FunctionName=name, Timeout=8)
    assert aws.runtime.functions.get(name).config.timeout == 8


# -- unknown routes and invoke fidelity ----------------------------------------------------------


async def test_an_operation_not_served_here_is_a_json_error_naming_it(lam: Any) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        await call(lam.list_aliases, FunctionName="anything")
    assert error_code(caught) == "UnknownOperationException"
    assert "ListAliases" in caught.value.response["Error"]["Message"]


async def test_invoke_errors_as_aws_words_them(lam: Any) -> None:
    name = (await create(lam))["FunctionName"]
    # A not-found names the ARN: "Function not found: arn:aws:lambda:...:function:NAME".
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as caught:
        await call(lam.invoke, FunctionName="no-such-fn", Payload=b"{}")
    assert caught.value.response["Error"]["Message"] == (
        "Function not found: arn:aws:lambda:us-east-1:123456789012:function:no-such-fn"
    )
    # InvalidRequestContentException (400): "The request body could not be parsed as JSON".
    with pytest.raises(lam.exceptions.InvalidRequestContentException, match="parse request body"):
        await call(lam.invoke, FunctionName=name, Payload=b"not json")
    # Over the 6 MB synchronous limit, well past any server buffer: 413 in JSON, which
    # boto3's RequestTooLargeException class (httpStatusCode 413 in the model) catches.
    with pytest.raises(lam.exceptions.RequestTooLargeException):
        await call(lam.invoke, FunctionName=name, Payload=b"[" + b"1," * 5_000_000 + b"1]")


async def test_a_timeout_carries_aws_prefix(lam: Any) -> None:
    name = (await create(lam, Timeout=1))["FunctionName"]
    answer, response = await invoke(lam, name, {"sleep": 3})
    assert response["FunctionError"] == "Unhandled"
    assert answer["errorType"] == "Sandbox.Timedout"
    # AWS: "<ISO time> <request id> Task timed out after 1.00 seconds".
    pattern = (
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [0-9a-f-]{36} Task timed out after 1\.00 seconds"
    )
    assert re.fullmatch(pattern, answer["errorMessage"])


async def test_log_type_tail_returns_the_invocations_log(lam: Any) -> None:
    name = (await create(lam))["FunctionName"]
    _, response = await invoke(lam, name, LogType="Tail")
    # InvocationResponse.LogResult: header X-Amz-Log-Result, base64, the last 4 KB (model, API ref).
    log = base64.b64decode(response["LogResult"]).decode()
    request_id = response["ResponseMetadata"]["RequestId"]
    assert f"hello from {name} version 1" in log
    assert log.startswith(f"START RequestId: {request_id}")
    assert f"END RequestId: {request_id}" in log
    _, quiet = await invoke(lam, name)
    assert "LogResult" not in quiet


async def test_function_output_and_errors_reach_the_logs_with_name_and_request_id(
    lam: Any, caplog: pytest.LogCaptureFixture
) -> None:

    caplog.set_level(logging.INFO, logger="aiofanout.local")
    name = (await create(lam))["FunctionName"]
    response = await call(
        lam.invoke, FunctionName=name, InvocationType="Event", Payload=json.dumps({"fail": True})
    )
    request_id = response["ResponseMetadata"]["RequestId"]
    await eventually(
        lambda: any(
            r.levelno == logging.WARNING and request_id in r.getMessage() for r in caplog.records
        )
    )
    lines = [r.getMessage() for r in caplog.records if request_id in r.getMessage()]
    assert any(f"{name} {request_id} hello from {name}" in line for line in lines)
    assert any(name in line and "ValueError" in line for line in lines)


# -- concurrency ---------------------------------------------------------------------------------


async def test_reserved_concurrency_is_enforced_and_reported(aws: LocalAws, lam: Any) -> None:
    name = (await create(lam, Timeout=30))["FunctionName"]
    # GetFunctionConcurrency with nothing reserved: an empty answer (no member).
    assert "ReservedConcurrentExecutions" not in await call(
        lam.get_function_concurrency, FunctionName=name
    )
    put = await call(
        lam.put_function_concurrency, FunctionName=name, ReservedConcurrentExecutions=1
    )
    assert put["ReservedConcurrentExecutions"] == 1  # the Concurrency shape
    got = await call(lam.get_function_concurrency, FunctionName=name)
    assert got["ReservedConcurrentExecutions"] == 1
    function = await call(lam.get_function, FunctionName=name)
    assert function["Concurrency"] == {"ReservedConcurrentExecutions": 1}
    busy = asyncio.ensure_future(aws.runtime.invoke(name, b'{"sleep": 1}'))
    await eventually(
        lambda: any(e.current for e in aws.runtime.functions.get(name).pool.members.values())
    )
    # Past the reserved concurrency: 429 TooManyRequestsException, Reason as the API ref lists.
    with pytest.raises(lam.exceptions.TooManyRequestsException) as caught:
        await call(lam.invoke, FunctionName=name, Payload=b"{}")
    assert caught.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    await busy
    deleted = await call(lam.delete_function_concurrency, FunctionName=name)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert "ReservedConcurrentExecutions" not in await call(
        lam.get_function_concurrency, FunctionName=name
    )


async def test_a_lowered_reserved_concurrency_retires_environments_as_they_finish(
    aws: LocalAws, lam: Any
) -> None:
    name = (await create(lam, Timeout=30))["FunctionName"]
    await call(lam.put_function_concurrency, FunctionName=name, ReservedConcurrentExecutions=3)
    pool = aws.runtime.functions.get(name).pool
    busy = [asyncio.ensure_future(aws.runtime.invoke(name, b'{"sleep": 1}')) for _ in range(3)]
    await eventually(lambda: sum(1 for e in pool.members.values() if e.current) == 3)
    await call(lam.put_function_concurrency, FunctionName=name, ReservedConcurrentExecutions=1)
    results = await asyncio.gather(*busy)
    assert all(r.error_type is None for r in results)  # none of the running invokes was cut
    # Above the new limit, environments retire as their invocations end: one stays warm.
    await eventually(lambda: len(pool.members) <= 1)
    assert aws.runtime.stats(name)["environments"] <= 1


async def test_provisioned_concurrency_needs_a_published_version_as_on_aws(
    aws: LocalAws, lam: Any
) -> None:
    name = (await create(lam))["FunctionName"]
    # Provisioned concurrency applies to a published version or an alias, never $LATEST (API
    # ref, PutProvisionedConcurrencyConfig); the local runtime publishes no versions.
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="unpublished"):
        await call(
            lam.put_provisioned_concurrency_config,
            FunctionName=name,
            Qualifier="$LATEST",
            ProvisionedConcurrentExecutions=2,
        )
    with pytest.raises(
        lam.exceptions.InvalidParameterValueException, match="an alias or a published version"
    ):
        await call(lam.get_provisioned_concurrency_config, FunctionName=name, Qualifier="$LATEST")
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as caught:
        await call(lam.get_provisioned_concurrency_config, FunctionName=name, Qualifier="live")
    assert caught.value.response["Error"]["Message"] == (
        f"Cannot find alias arn: arn:aws:lambda:us-east-1:123456789012:function:{name}:live"
    )
    # The runtime still starts environments ahead (renewed by every change of config).
    function = aws.runtime.functions.get(name)
    provisioned = aws.runtime.control.provision(function, 2)
    await eventually(lambda: provisioned.status == "READY")
    assert provisioned.allocated == 2
    stats = aws.runtime.stats(name)
    assert (stats["environments"], len(stats["cold_starts_ms"])) == (2, 2)
    await invoke(lam, name)
    assert len(aws.runtime.stats(name)["cold_starts_ms"]) == 2  # served warm: no cold start


# -- asynchronous invocation ---------------------------------------------------------------------


async def queue(sqs: Any, prefix: str) -> tuple[str, str]:
    """A new queue: its URL and ARN."""
    url = (await call(sqs.create_queue, QueueName=unique(prefix)))["QueueUrl"]
    got = await call(sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["QueueArn"])
    return url, got["Attributes"]["QueueArn"]


@pytest.fixture(scope="module")
def sqs(aws: LocalAws) -> Any:
    return client("sqs", aws.endpoint_url)


async def test_put_overwrites_update_merges_and_delete_removes(lam: Any, sqs: Any) -> None:
    name = (await create(lam))["FunctionName"]
    _, failures = await queue(sqs, "failures")
    put = await call(
        lam.put_function_event_invoke_config,
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": failures}},
    )
    # FunctionEventInvokeConfig: FunctionArn, MaximumRetryAttempts, DestinationConfig (model).
    assert put["FunctionArn"].endswith(f":function:{name}:$LATEST")
    assert put["MaximumRetryAttempts"] == 0
    assert put["DestinationConfig"]["OnFailure"] == {"Destination": failures}
    # Update merges: what it leaves out stays (API ref, UpdateFunctionEventInvokeConfig).
    updated = await call(
        lam.update_function_event_invoke_config, FunctionName=name, MaximumEventAgeInSeconds=3600
    )
    assert (updated["MaximumRetryAttempts"], updated["MaximumEventAgeInSeconds"]) == (0, 3600)
    assert updated["DestinationConfig"]["OnFailure"] == {"Destination": failures}
    # Put overwrites: what it leaves out is dropped (API ref, PutFunctionEventInvokeConfig).
    again = await call(
        lam.put_function_event_invoke_config, FunctionName=name, MaximumEventAgeInSeconds=120
    )
    assert "MaximumRetryAttempts" not in again
    assert again["DestinationConfig"].get("OnFailure", {}) == {}
    got = await call(lam.get_function_event_invoke_config, FunctionName=name)
    assert got["MaximumEventAgeInSeconds"] == 120
    listed = await call(lam.list_function_event_invoke_configs, FunctionName=name)
    assert [c["MaximumEventAgeInSeconds"] for c in listed["FunctionEventInvokeConfigs"]] == [120]
    await call(lam.delete_function_event_invoke_config, FunctionName=name)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        await call(lam.get_function_event_invoke_config, FunctionName=name)


async def test_destinations_receive_aws_invocation_records(lam: Any, sqs: Any) -> None:
    name = (await create(lam))["FunctionName"]
    successes, success_arn = await queue(sqs, "ok")
    failures, failure_arn = await queue(sqs, "failed")
    destinations = {
        "OnSuccess": {"Destination": success_arn},
        "OnFailure": {"Destination": failure_arn},
    }
    await call(
        lam.put_function_event_invoke_config,
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig=destinations,
    )
    await call(lam.invoke, FunctionName=name, InvocationType="Event", Payload=b'{"n": 1}')
    await call(lam.invoke, FunctionName=name, InvocationType="Event", Payload=b'{"fail": true}')
    # The asynchronous invocation record (DESIGN.md; Lambda guide "Destinations").
    [ok] = [json.loads(m["Body"]) for m in await receive(sqs, successes, 1)]
    assert ok["requestContext"]["condition"] == "Success"
    assert ok["requestPayload"] == {"n": 1}
    assert ok["responsePayload"] == {"version": "1", "greeting": None}
    assert "functionError" not in ok["responseContext"]
    [bad] = [json.loads(m["Body"]) for m in await receive(sqs, failures, 1)]
    assert bad["requestContext"]["condition"] == "RetriesExhausted"
    assert bad["requestContext"]["approximateInvokeCount"] == 1  # MaximumRetryAttempts=0
    assert bad["responseContext"]["functionError"] == "Unhandled"
    assert bad["responsePayload"]["errorType"] == "ValueError"


async def test_an_event_older_than_the_maximum_age_goes_to_on_failure_unrun(
    aws: LocalAws, lam: Any, sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    name = (await create(lam))["FunctionName"]
    failures, failure_arn = await queue(sqs, "aged")
    await call(
        lam.put_function_event_invoke_config,
        FunctionName=name,
        MaximumEventAgeInSeconds=60,
        DestinationConfig={"OnFailure": {"Destination": failure_arn}},
    )
    # The minimum age is 60 s (model); the runner's clock jumps an hour instead of waiting.
    monkeypatch.setattr(aws.runtime._events, "clock", lambda: time.time() + 3600)
    await call(lam.invoke, FunctionName=name, InvocationType="Event", Payload=b'{"n": 2}')
    [aged] = [json.loads(m["Body"]) for m in await receive(sqs, failures, 1)]
    assert aged["requestContext"]["condition"] == "EventAgeExceeded"
    assert aged["requestPayload"] == {"n": 2}
    assert aws.runtime.stats(name)["invocations"] == 0


# -- event source mappings -----------------------------------------------------------------------


def queue_is_drained(sqs: Any, url: str) -> bool:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return all(got[n] == "0" for n in names)


async def test_an_sqs_mapping_created_through_the_api_runs_and_reports_its_states(
    aws: LocalAws, lam: Any, sqs: Any
) -> None:
    name = (await create(lam))["FunctionName"]
    url, arn = await queue(sqs, "mapped")
    created = await call(
        lam.create_event_source_mapping,
        EventSourceArn=arn,
        FunctionName=name,
        BatchSize=5,
        MaximumBatchingWindowInSeconds=0,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        ScalingConfig={"MaximumConcurrency": 2},
    )
    # CreateEventSourceMapping: 202, State "Creating", a UUID (model; API ref).
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert created["State"] == "Creating"
    uuid_ = created["UUID"]
    assert re.fullmatch(r"[0-9a-f-]{36}", uuid_)
    assert (created["BatchSize"], created["EventSourceArn"]) == (5, arn)
    assert created["FunctionArn"].endswith(f":function:{name}")
    assert created["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert created["ScalingConfig"] == {"MaximumConcurrency": 2}

    def state_is(state: str) -> Any:
        got = lam.get_event_source_mapping(UUID=uuid_)
        return got if got["State"] == state else None

    await eventually(lambda: asyncio.to_thread(state_is, "Enabled"))
    for n in range(7):
        await call(sqs.send_message, QueueUrl=url, MessageBody=json.dumps({"n": n}))
    await eventually(lambda: asyncio.to_thread(queue_is_drained, sqs, url))
    assert aws.runtime.stats(name)["invocations"] >= 2  # batches of at most 5
    listed = await call(lam.list_event_source_mappings, FunctionName=name)
    assert [m["UUID"] for m in listed["EventSourceMappings"]] == [uuid_]
    updated = await call(lam.update_event_source_mapping, UUID=uuid_, BatchSize=3, Enabled=False)
    # Turning a mapping off makes it Disabling, then Disabled (API ref, State).
    assert (updated["State"], updated["BatchSize"]) == ("Disabling", 3)
    await eventually(lambda: asyncio.to_thread(state_is, "Disabled"))
    deleted = await call(lam.delete_event_source_mapping, UUID=uuid_)
    assert deleted["State"] == "Deleting"

    def gone() -> bool:
        try:
            lam.get_event_source_mapping(UUID=uuid_)
        except lam.exceptions.ResourceNotFoundException:
            return True
        return False

    await eventually(lambda: asyncio.to_thread(gone))


async def test_a_disabled_mapping_leaves_the_queue_alone(aws: LocalAws, lam: Any, sqs: Any) -> None:
    name = (await create(lam))["FunctionName"]
    url, arn = await queue(sqs, "idle")
    created = await call(
        lam.create_event_source_mapping, EventSourceArn=arn, FunctionName=name, Enabled=False
    )
    assert created["BatchSize"] == 10  # AWS's default for SQS
    await eventually(
        lambda: asyncio.to_thread(
            lambda: lam.get_event_source_mapping(UUID=created["UUID"])["State"] == "Disabled"
        )
    )
    mapping = aws.runtime.mappings.by_uuid[created["UUID"]]
    assert mapping.pollers == []
    await call(lam.update_event_source_mapping, UUID=created["UUID"], Enabled=True)
    await call(sqs.send_message, QueueUrl=url, MessageBody="{}")
    await eventually(lambda: asyncio.to_thread(queue_is_drained, sqs, url))
    await call(lam.delete_event_source_mapping, UUID=created["UUID"])


async def test_a_mapping_added_from_python_is_listed_and_bad_settings_are_refused(
    aws: LocalAws, lam: Any, sqs: Any
) -> None:
    from aiofanout.local import EventSourceMapping

    name = unique()
    aws.add_function(FunctionConfig(name, "plain.echo", code_paths=[FUNCTIONS]))
    url, arn = await queue(sqs, "py")
    uuid_ = await aws.add_event_source(EventSourceMapping(url, name, batch_size=4))
    got = await call(lam.get_event_source_mapping, UUID=uuid_)
    assert (got["State"], got["BatchSize"], got["EventSourceArn"]) == ("Enabled", 4, arn)
    # More than 10 records need a batching window of at least 1 s (API ref, BatchSize).
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        await call(
            lam.create_event_source_mapping, EventSourceArn=arn, FunctionName=name, BatchSize=100
        )
    # A mapping to no function: AWS answers 400, not 404 ("Function does not exist").
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="does not exist"):
        await call(lam.create_event_source_mapping, EventSourceArn=arn, FunctionName="nope")
    await call(lam.delete_event_source_mapping, UUID=uuid_)


async def test_code_lives_in_a_private_directory_removed_with_the_stack() -> None:
    import io
    import zipfile

    async with stack() as local:
        lam = client("lambda", local.lambda_endpoint_url)
        name = (await create(lam))["FunctionName"]
        directory = Path(local.runtime.functions.get(name).config.code_paths[0])
        assert (directory / "app.py").exists()
        assert private(directory)
        evil = io.BytesIO()
        with zipfile.ZipFile(evil, "w") as archive:
            archive.writestr("../escaped.py", "x = 1")
        with pytest.raises(lam.exceptions.InvalidParameterValueException, match="unsafe"):
            await create(lam, Code={"ZipFile": evil.getvalue()})
        assert not (directory.parent.parent / "escaped.py").exists()
    assert not await asyncio.to_thread(directory.exists)


def private(directory: Path) -> bool:
    """Only its owner may read, write or enter ``directory`` (mode 0700)."""
    import stat

    return stat.S_IMODE(directory.stat().st_mode) == 0o700
