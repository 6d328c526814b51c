"""The local Lambda answers as AWS answers: validation, order of checks, errors, states, keys.

Through boto3 with ``parameter_validation=False``, so what botocore would refuse client-side
reaches the server and the server's answer is what is tested. What AWS answers comes from
botocore's service model for ``lambda`` 2015-03-31 (``botocore/data/lambda/2015-03-31/
service-2.json``: each member's ``min``, ``max``, ``pattern``, ``enum``, ``required``), the
Lambda API reference (docs.aws.amazon.com/lambda/latest/api/) and the Lambda developer guide
("Lambda function states", "Monitoring: REPORT"); each test says what it relies on. The exact
messages are the ones AWS sends (recorded from AWS in LocalStack's snapshot tests,
``tests/aws/services/lambda_/test_lambda_api.snapshot.json``).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import urllib.request
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from aiofanout.local import AccountLimits, FunctionConfig, LocalAws, stack

from .control_plane_helpers import call, client, unique, zipped

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

ROLE = "arn:aws:iam::123456789012:role/lambda-role"
FUNCTIONS = str(Path(__file__).with_name("lambda_functions"))
ARN = "arn:aws:lambda:us-east-1:123456789012:function:"
#: A small account, so its limits are reached: 30 concurrent executions, 10 left unreserved.
ACCOUNT = AccountLimits(concurrency=30, minimum_unreserved=10)
ECHO = """
import os
import time

def handler(event, context):
    if isinstance(event, dict) and "gate" in event:  # running: say so, then wait for the gate
        open(event["started"], "w").close()
        while not os.path.exists(event["gate"]):
            time.sleep(0.01)
    time.sleep(event.get("sleep", 0) if isinstance(event, dict) else 0)
    return event
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def aws() -> AsyncIterator[LocalAws]:
    async with stack(account=ACCOUNT) as local:
        yield local


@pytest.fixture(scope="module")
def lam(aws: LocalAws) -> Any:
    return client("lambda", aws.lambda_endpoint_url, parameter_validation=False)


def echo_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", ECHO)
    return buffer.getvalue()


async def create(lam: Any, **kwargs: Any) -> dict[str, Any]:
    settings = {
        "FunctionName": unique(),
        "Runtime": "python3.11",
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": zipped()},
        **kwargs,
    }
    return dict(await call(lam.create_function, **settings))


async def refused(method: Any, **kwargs: Any) -> tuple[int, str, str]:
    """Call ``method``, which must fail: (status, x-amzn-ErrorType, message)."""
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        await call(method, **kwargs)
    response = caught.value.response
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-errortype"] == response["Error"]["Code"]
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        headers["x-amzn-errortype"],
        str(response["Error"]["Message"]),
    )


def model_pattern(operation: str, member: str) -> str:
    """The ``pattern`` botocore's service model gives ``member`` of ``operation``'s input."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("lambda")
    return str(model.operation_model(operation).input_shape.members[member].metadata["pattern"])


# -- validation from the service model -----------------------------------------------------------


async def test_a_name_outside_the_pattern_is_a_validation_error_before_any_lookup(
    lam: Any,
) -> None:
    # GetFunction's FunctionName is a NamespacedFunctionName (model): "bad name!" breaks its
    # pattern. AWS validates before it looks the function up: 400, not 404.
    pattern = model_pattern("GetFunction", "FunctionName")
    assert await refused(lam.get_function, FunctionName="bad name!") == (
        400,
        "ValidationException",
        "1 validation error detected: Value 'bad name!' at 'functionName' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {pattern}",
    )
    # ReservedConcurrentExecutions has min 0 (model): invalid and missing gives 400 too.
    status, code, message = await refused(
        lam.put_function_concurrency, FunctionName="missing", ReservedConcurrentExecutions=-1
    )
    assert (status, code) == (400, "ValidationException")
    assert message.endswith(
        "Value '-1' at 'reservedConcurrentExecutions' failed to satisfy constraint: "
        "Member must have value greater than or equal to 0"
    )


async def test_create_function_checks_role_memory_and_required_members_together(
    lam: Any,
) -> None:
    # Role: the RoleArn pattern; MemorySize: 128-10240 (model). Both wrong: both listed, in one.
    role = model_pattern("CreateFunction", "Role")
    assert role == r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"
    _, code, message = await refused(
        lam.create_function,
        FunctionName=unique(),
        Runtime="python3.11",
        Role="lambda-role",
        Handler="app.handler",
        Code={"ZipFile": zipped()},
        MemorySize=64,
    )
    assert code == "ValidationException"
    assert message == (
        "2 validation errors detected: Value 'lambda-role' at 'role' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {role}; Value '64' at "
        "'memorySize' failed to satisfy constraint: Member must have value greater than or "
        "equal to 128"
    )
    _, _, too_much = await refused(
        lam.create_function, FunctionName=unique(), Role=ROLE, Code={}, MemorySize=20_000
    )
    assert "Value '20000' at 'memorySize'" in too_much
    assert "Member must have value less than or equal to 10240" in too_much
    # Role and Code are required (model): "Value null at ... Member must not be null".
    _, _, missing = await refused(lam.create_function, FunctionName=unique())
    assert "Value null at 'role' failed to satisfy constraint: Member must not be null" in missing
    assert "Value null at 'code' failed" in missing


async def test_enums_lists_and_nested_members_are_checked(lam: Any) -> None:
    # ListFunctions' FunctionVersion is an enum of ALL (model); AWS's exact answer.
    assert await refused(lam.list_functions, FunctionVersion="LATEST") == (
        400,
        "ValidationException",
        "1 validation error detected: Value 'LATEST' at 'functionVersion' failed to satisfy "
        "constraint: Member must satisfy enum value set: [ALL]",
    )
    # A list's member fails as a whole, every constraint of the member listed (AWS's words).
    _, _, message = await refused(
        lam.create_function,
        FunctionName=unique(),
        Role=ROLE,
        Code={"ZipFile": zipped()},
        Architectures=["X86_64"],
    )
    assert message == (
        "1 validation error detected: Value '[X86_64]' at 'architectures' failed to satisfy "
        "constraint: Member must satisfy constraint: [Member must satisfy enum value set: "
        "[x86_64, arm64], Member must not be null]"
    )
    # A nested member is named by its path; MaximumRetryAttempts is 0-2 (model).
    _, _, nested = await refused(
        lam.put_function_event_invoke_config,
        FunctionName="anything",
        MaximumRetryAttempts=5,
        DestinationConfig={"OnFailure": {"Destination": "not an arn"}},
    )
    assert nested.startswith("2 validation errors detected: Value '5' at 'maximumRetryAttempts'")
    assert "Value 'not an arn' at 'destinationConfig.onFailure.destination'" in nested
    # A header member too: X-Amz-Invocation-Type is an InvocationType enum (model).
    _, _, header = await refused(lam.invoke, FunctionName="anything", InvocationType="Later")
    assert "Value 'Later' at 'invocationType'" in header


async def test_a_runtime_outside_the_model_is_refused_in_aws_words(lam: Any) -> None:
    # Runtime is an enum (model); AWS checks it itself, with InvalidParameterValueException.
    _, code, message = await refused(
        lam.create_function,
        FunctionName=unique(),
        Runtime="PYTHON3.9",
        Role=ROLE,
        Code={"ZipFile": zipped()},
    )
    assert code == "InvalidParameterValueException"
    assert message.startswith(
        "Value PYTHON3.9 at 'runtime' failed to satisfy constraint: "
        "Member must satisfy enum value set: ["
    )
    assert message.endswith("] or be a valid ARN")
    assert "python3.12" in message


async def test_a_name_over_64_characters_is_refused_as_aws_refuses_it(lam: Any) -> None:
    # The model allows 140 (an ARN); AWS refuses a longer name with a validation message under
    # InvalidParameterValueException.
    name = "a" * 65
    assert await refused(
        lam.create_function, FunctionName=name, Role=ROLE, Code={"ZipFile": zipped()}
    ) == (
        400,
        "InvalidParameterValueException",
        f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
        "constraint: Member must have length less than or equal to 64",
    )


# -- the checks AWS makes beyond the model ---------------------------------------------------------


async def test_reserved_concurrency_keeps_the_accounts_unreserved_minimum(lam: Any) -> None:
    name = (await create(lam))["FunctionName"]
    # GetAccountSettings: the account's limits and usage (API ref); here AccountLimits(30, 10).
    settings = await call(lam.get_account_settings)
    limit = settings["AccountLimit"]
    assert (limit["ConcurrentExecutions"], limit["UnreservedConcurrentExecutions"]) == (30, 30)
    assert (limit["CodeSizeZipped"], limit["CodeSizeUnzipped"]) == (52_428_800, 262_144_000)
    listed = await call(lam.list_functions)
    assert settings["AccountUsage"]["FunctionCount"] == len(listed["Functions"])
    await call(lam.put_function_concurrency, FunctionName=name, ReservedConcurrentExecutions=20)
    after = await call(lam.get_account_settings)
    assert after["AccountLimit"]["UnreservedConcurrentExecutions"] == 10
    # 21 would leave 9 of the 10 the account keeps unreserved: 400, in AWS's words.
    assert await refused(
        lam.put_function_concurrency, FunctionName=name, ReservedConcurrentExecutions=21
    ) == (
        400,
        "InvalidParameterValueException",
        "Specified ReservedConcurrentExecutions for function decreases account's "
        "UnreservedConcurrentExecution below its minimum value of [10].",
    )
    # A reservation names the function itself: a qualified ARN is 400; a missing one 404 with
    # the :$LATEST qualifier AWS puts in this message.
    _, _, qualified = await refused(
        lam.put_function_concurrency,
        FunctionName=f"{ARN}{name}:$LATEST",
        ReservedConcurrentExecutions=1,
    )
    assert qualified.startswith("This operation is permitted on Lambda functions only.")
    assert await refused(
        lam.put_function_concurrency, FunctionName="missing", ReservedConcurrentExecutions=1
    ) == (404, "ResourceNotFoundException", f"Function not found: {ARN}missing:$LATEST")
    await call(lam.delete_function_concurrency, FunctionName=name)


async def test_not_found_is_worded_as_aws_words_it_per_operation(lam: Any) -> None:
    assert await refused(lam.get_function, FunctionName="missing") == (
        404,
        "ResourceNotFoundException",
        f"Function not found: {ARN}missing",
    )
    # Event invoke configs of a missing function (recorded AWS answers).
    put = await refused(
        lam.put_function_event_invoke_config, FunctionName="missing", MaximumRetryAttempts=1
    )
    assert put == (404, "ResourceNotFoundException", "The function doesn't exist.")
    _, _, got = await refused(lam.get_function_event_invoke_config, FunctionName="missing")
    assert got == f"The function {ARN}missing:$LATEST doesn't have an EventInvokeConfig"
    _, _, listed = await refused(lam.list_function_event_invoke_configs, FunctionName="missing")
    assert listed == "The function doesn't exist."
    name = (await create(lam))["FunctionName"]
    _, _, none = await refused(lam.delete_function_event_invoke_config, FunctionName=name)
    assert none == f"The function {ARN}{name}:$LATEST doesn't have an EventInvokeConfig"
    # A qualifier in the name and another one given: 400 (recorded AWS answer).
    assert await refused(lam.get_function, FunctionName=f"{name}:1", Qualifier="2") == (
        400,
        "InvalidParameterValueException",
        "The derived qualifier from the function name does not match the specified qualifier.",
    )
    # DeleteFunction deletes a version by its qualifier, never $LATEST (API ref, Qualifier).
    _, _, latest = await refused(lam.delete_function, FunctionName=name, Qualifier="$LATEST")
    assert latest == "$LATEST version cannot be deleted without deleting the function."
    await call(lam.get_function, FunctionName=name)  # still there


async def test_a_second_mapping_of_one_queue_to_one_function_is_a_conflict(
    aws: LocalAws, lam: Any
) -> None:
    name = (await create(lam))["FunctionName"]
    sqs = client("sqs", aws.endpoint_url)
    url = (await call(sqs.create_queue, QueueName=unique("q")))["QueueUrl"]
    got = await call(sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["QueueArn"])
    arn = got["Attributes"]["QueueArn"]
    created = await call(
        lam.create_event_source_mapping, EventSourceArn=arn, FunctionName=name, Enabled=False
    )
    # CreateEventSourceMapping: 409 ResourceConflictException for a duplicate (API ref).
    assert await refused(
        lam.create_event_source_mapping, EventSourceArn=arn, FunctionName=name
    ) == (
        409,
        "ResourceConflictException",
        f'An event source mapping with SQS arn (" {arn} ") and function (" {name} ") already '
        f"exists. Please update or delete the existing mapping with UUID {created['UUID']}",
    )
    # A disabled mapping is Creating, then Disabled; turned on, Enabling, then Enabled.
    assert created["State"] == "Creating"
    uuid_ = created["UUID"]
    await until_state(lam, uuid_, "Disabled")
    enabling = await call(lam.update_event_source_mapping, UUID=uuid_, Enabled=True)
    assert enabling["State"] == "Enabling"
    await until_state(lam, uuid_, "Enabled")
    await call(lam.delete_event_source_mapping, UUID=uuid_)


async def until_state(lam: Any, uuid_: str, state: str) -> None:
    from aiofanout.testing import eventually

    async def reached() -> bool:
        return bool((await call(lam.get_event_source_mapping, UUID=uuid_))["State"] == state)

    await eventually(reached)


# -- states, keys, code ------------------------------------------------------------------------


async def test_states_follow_aws_and_boto3s_waiters_wait_for_them(lam: Any) -> None:
    code = echo_zip()
    created = await create(lam, Code={"ZipFile": code})
    name = created["FunctionName"]
    # CreateFunction: Pending with its reason, no LastUpdateStatus yet (developer guide,
    # "Lambda function states").
    assert (created["State"], created["StateReason"], created["StateReasonCode"]) == (
        "Pending",
        "The function is being created.",
        "Creating",
    )
    assert "LastUpdateStatus" not in created
    await call(lam.get_waiter("function_active_v2").wait, FunctionName=name)
    active = (await call(lam.get_function, FunctionName=name))["Configuration"]
    assert (active["State"], active["LastUpdateStatus"]) == ("Active", "Successful")
    assert "StateReason" not in active
    updated = await call(lam.update_function_configuration, FunctionName=name, Timeout=9)
    assert (updated["LastUpdateStatus"], updated["LastUpdateStatusReasonCode"]) == (
        "InProgress",
        "Creating",
    )
    await call(lam.get_waiter("function_updated_v2").wait, FunctionName=name)
    config = await call(lam.get_function_configuration, FunctionName=name)
    assert (config["LastUpdateStatus"], config["Timeout"]) == ("Successful", 9)
    # Keys AWS always sends (FunctionConfiguration in the model).
    assert config["SnapStart"] == {"ApplyOn": "None", "OptimizationStatus": "Off"}
    version = config["RuntimeVersionConfig"]["RuntimeVersionArn"]
    assert re.fullmatch(r"arn:aws:lambda:us-east-1::runtime:[0-9a-f]{64}", version)
    # GetFunction's Code.Location is a URL that downloads the deployment package (API ref).
    location = (await call(lam.get_function, FunctionName=name))["Code"]["Location"]
    downloaded = await asyncio.to_thread(lambda: urllib.request.urlopen(location).read())
    assert downloaded == code


async def test_the_code_location_of_a_source_directory_downloads_it_zipped(
    aws: LocalAws, lam: Any
) -> None:
    name = unique()
    aws.add_function(FunctionConfig(name, "plain.echo", code_paths=[FUNCTIONS]))
    try:
        location = (await call(lam.get_function, FunctionName=name))["Code"]["Location"]
        downloaded = await asyncio.to_thread(lambda: urllib.request.urlopen(location).read())
    finally:
        aws.runtime.control.remove(name)  # its reservation would count against the account
    with zipfile.ZipFile(io.BytesIO(downloaded)) as archive:
        names = archive.namelist()
    assert "plain.py" in names
    assert not [n for n in names if "__pycache__" in n or n.startswith(".")]


async def test_invoke_without_a_payload_runs_the_handler_with_an_empty_event(lam: Any) -> None:
    name = (await create(lam, Code={"ZipFile": echo_zip()}))["FunctionName"]
    response = await call(lam.invoke, FunctionName=name)
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {}


async def test_the_tail_log_reports_durations_and_memory_as_lambda_does(lam: Any) -> None:
    name = (await create(lam, Code={"ZipFile": echo_zip()}, MemorySize=256))["FunctionName"]
    payload = json.dumps({"sleep": 0.2})
    cold = await call(lam.invoke, FunctionName=name, Payload=payload, LogType="Tail")
    warm = await call(lam.invoke, FunctionName=name, Payload=payload, LogType="Tail")
    # The REPORT line (developer guide, "Using CloudWatch Logs with Lambda"): tab-separated,
    # Init Duration on a cold start only.
    first, second = (report_of(r) for r in (cold, warm))
    assert first["RequestId"] == cold["ResponseMetadata"]["RequestId"]
    assert 200 <= float(first["Duration"]) < 5000  # the handler slept 0.2 s
    assert first["Memory Size"] == "256"
    assert int(first["Max Memory Used"]) > 5  # the environment's peak resident memory, MB
    assert float(first["Init Duration"]) > 0
    # Rounded up to the ms, the init included (AWS bills INIT since 2025-08); the shown
    # durations are rounded to 0.01 ms, hence the 0.02 either side.
    billed = float(first["Duration"]) + float(first["Init Duration"])
    assert billed - 0.02 <= int(first["Billed Duration"]) < billed + 1.02
    assert "Init Duration" not in second
    assert int(second["Billed Duration"]) >= float(second["Duration"]) >= 200


async def test_an_environment_retired_after_its_invoke_still_reports_its_memory(
    lam: Any, tmp_path: Path
) -> None:
    from aiofanout.testing import eventually

    name = (await create(lam, Code={"ZipFile": echo_zip()}))["FunctionName"]
    started, gate = tmp_path / "started", tmp_path / "gate"
    payload = json.dumps({"started": str(started), "gate": str(gate)})
    invoking = asyncio.ensure_future(
        call(lam.invoke, FunctionName=name, Payload=payload, LogType="Tail")
    )
    await eventually(started.exists)
    # A changed configuration retires the environment as soon as this invoke ends.
    await call(lam.update_function_configuration, FunctionName=name, Timeout=9)
    gate.touch()
    report = report_of(await invoking)
    assert int(report["Max Memory Used"]) > 5


def report_of(response: dict[str, Any]) -> dict[str, str]:
    log = base64.b64decode(response["LogResult"]).decode()
    [line] = [line for line in log.splitlines() if line.startswith("REPORT ")]
    assert line.endswith("\t")
    fields = [field.split(": ", 1) for field in line.removeprefix("REPORT ").split("\t") if field]
    return {key: value.removesuffix(" ms").removesuffix(" MB") for key, value in fields}
