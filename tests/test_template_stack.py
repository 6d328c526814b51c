"""``serve --template`` end to end: a SAM template run locally, fanned out to through the library.

The SAM template under ``tests/templates/fanout`` is served by the real ``python -m aiofanout
serve --template`` (one process for the module), with its worker's ``CodeUri`` a zip that
``aiofanout build`` made (the worker, aiofanout and its dependencies: template functions run
isolated, as on AWS). The tests read its printed outputs and fan out to what it created:
``RequestResponse``, ``Event`` with replies and the on-failure destination, SQS with replies
through the template's event source mapping. A plain CloudFormation template (inline code, a
zip, a directory, the Lambda resource types, a rule) and a schedule's fire run through the
Python hook, ``Template.load(...).deploy(aws)`` on ``aiofanout.local.stack()``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aioboto3
import pytest

from aiofanout import LambdaTarget, SqsTarget, Status, TaskFailed, UsageError, dispatch_many
from aiofanout.deploy import Stack, build
from aiofanout.local import Template, stack
from aiofanout.testing import eventually

from .deploy_helpers import EXAMPLE
from .serving import Served, serving
from .test_build import CACHE

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

FIXTURE = Path(__file__).parent / "templates" / "fanout"
TICKER = FIXTURE / "ticker"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # The fixture's folder as `build` leaves one: the template, worker.zip beside it.
    folder = tmp_path_factory.mktemp("template") / "fanout"
    shutil.copytree(FIXTURE, folder)
    built = build(Stack.load(FIXTURE / "stack.toml"), folder / "built", cache_dir=CACHE)
    shutil.copy(built.zips["worker"], folder / "worker.zip")
    template = folder / "template.yaml"
    with serving("--template", str(template), "--parameter", "Stage=dev") as running:
        yield running


def outputs(served: Served) -> dict[str, str]:
    """The template's outputs as serve printed them: ``  output  Name  value``."""
    found = {}
    for line in served.banner:
        words = line.split()
        if len(words) == 3 and words[0] == "output":
            found[words[1]] = words[2]
    return found


def client(served: Served, service: str) -> Any:
    url = served.lambda_url if service == "lambda" else served.moto_url
    return aioboto3.Session(region_name=REGION).client(service, endpoint_url=url)


def worker(served: Served, task: str, **kwargs: Any) -> LambdaTarget:
    return LambdaTarget(
        outputs(served)["WorkerName"],
        task=task,
        endpoint_url=served.lambda_url,
        sqs_endpoint_url=served.moto_url,
        region_name=REGION,
        **kwargs,
    )


async def test_request_response_reaches_the_templates_function(served: Served) -> None:
    result = await dispatch_many(worker(served, "square"), range(20), concurrency=4, timeout=60)
    assert result.values() == [n * n for n in range(20)]
    # Globals, the function's own variables (a Ref to a queue) and --parameter reached it.
    names = ["STAGE", "WORK_QUEUE_URL"]
    settings = await dispatch_many(worker(served, "setting"), names, concurrency=2)
    assert settings.values() == ["dev", outputs(served)["WorkQueueUrl"]]
    limits = await dispatch_many(worker(served, "limits"), [0], concurrency=1)
    assert limits.values() == [{"memory": "256", "name": "local-worker"}]


async def test_event_with_replies_and_the_templates_on_failure_destination(
    served: Served,
) -> None:
    target = worker(served, "square", invocation_type="Event", replies=True)
    result = await dispatch_many(target, [1, 2, 3, -4], concurrency=4, timeout=60)
    assert [o.value for o in result][:3] == [1, 4, 9]
    failed = result[3]
    assert failed.status is Status.FAILED
    assert isinstance(failed.error, TaskFailed)
    assert failed.error.remote_type == "ValueError"
    # The error went back as its reply; without replies, a failed Event goes to the
    # EventInvokeConfig's OnFailure queue, with no retry (MaximumRetryAttempts: 0).
    plain = worker(served, "square", invocation_type="Event")
    sent = await dispatch_many(plain, [-5], concurrency=1)
    assert sent.counts[Status.SUCCEEDED] == 1  # accepted (202)
    async with client(served, "sqs") as sqs:

        async def failure_records() -> Any:
            got = await sqs.receive_message(
                QueueUrl=outputs(served)["EventFailuresUrl"], WaitTimeSeconds=1
            )
            return got.get("Messages")

        [message] = await eventually(failure_records)
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["requestContext"]["functionArn"] == outputs(served)["WorkerArn"] + ":$LATEST"
    assert record["responsePayload"]["errorMessage"] == "-5 is negative"


async def test_sqs_with_replies_through_the_templates_event_source(served: Served) -> None:
    target = SqsTarget(
        outputs(served)["WorkQueueUrl"],
        task="square",
        replies=True,
        endpoint_url=served.moto_url,
        region_name=REGION,
    )
    result = await dispatch_many(target, range(30), concurrency=10, timeout=30, deadline=60)
    assert result.values() == [n * n for n in range(30)]


async def test_the_templates_resources_are_as_it_declares(served: Served) -> None:
    out = outputs(served)
    async with client(served, "sqs") as sqs:
        work = await sqs.get_queue_attributes(QueueUrl=out["WorkQueueUrl"], AttributeNames=["All"])
        dead = await sqs.get_queue_url(QueueName="local-WorkDeadLetters")
        dead_attributes = await sqs.get_queue_attributes(
            QueueUrl=dead["QueueUrl"], AttributeNames=["All"]
        )
        dev_only = await sqs.get_queue_url(QueueName=out["DevQueue"])  # Stage=dev made it
    assert work["Attributes"]["VisibilityTimeout"] == "180"
    assert json.loads(work["Attributes"]["RedrivePolicy"]) == {
        "deadLetterTargetArn": dead_attributes["Attributes"]["QueueArn"],
        "maxReceiveCount": 3,
    }
    assert dead_attributes["Attributes"]["MessageRetentionPeriod"] == "1209600"
    assert dev_only["QueueUrl"].endswith("/local-DevOnly")
    async with client(served, "s3") as s3:
        await s3.head_bucket(Bucket=out["ClaimsBucket"])
    async with client(served, "dynamodb") as dynamodb:
        table = (await dynamodb.describe_table(TableName=out["IdempotencyTable"]))["Table"]
        ttl = await dynamodb.describe_time_to_live(TableName=out["IdempotencyTable"])
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
    assert out["Where"] == "us-east-1/123456789012/local/dev"


async def test_the_templates_function_settings_are_on_the_lambda_api(served: Served) -> None:
    name = outputs(served)["WorkerName"]
    async with client(served, "lambda") as lam:
        function = await lam.get_function(FunctionName=name)
        listed = await lam.list_event_source_mappings(FunctionName=name)
        invoke_config = await lam.get_function_event_invoke_config(FunctionName=name)
    configuration = function["Configuration"]
    assert (configuration["Timeout"], configuration["MemorySize"]) == (30, 256)
    assert configuration["Runtime"] == "python3.11"
    assert function["Concurrency"] == {"ReservedConcurrentExecutions": 4}
    mappings = {m["EventSourceArn"].rpartition(":")[2]: m for m in listed["EventSourceMappings"]}
    assert mappings["local-PausedQueue"]["State"] == "Disabled"  # its event's Enabled: false
    assert mappings["local-PausedQueue"]["FunctionResponseTypes"] == []
    mapping = mappings["local-WorkQueue"]
    assert mapping["State"] == "Enabled"
    assert mapping["BatchSize"] == 10
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 2}
    assert invoke_config["MaximumRetryAttempts"] == 0
    failures = invoke_config["DestinationConfig"]["OnFailure"]["Destination"]
    assert failures.endswith(":local-EventFailures")
    # What the local stack leaves out is named, one line each.
    assert any(
        "Resources.Api (AWS::Serverless::Api): not supported" in line for line in served.banner
    )


async def test_the_example_stack_built_then_served_from_its_template(tmp_path: Path) -> None:
    # The road as a user takes it: `build` writes the SAM template and the zips, and
    # `serve --template --strict` runs exactly that (nothing in it is outside the subset).
    built = build(Stack.load(EXAMPLE), tmp_path / "build", cache_dir=CACHE)
    with serving("--template", str(built.template), "--strict") as served:
        out = outputs(served)
        keys = [f"photo-{n}.jpg" for n in range(12)]

        def worker(task: str, **options: Any) -> LambdaTarget:
            return LambdaTarget(
                out["WorkerFunctionName"],
                task=task,
                endpoint_url=served.lambda_url,
                sqs_endpoint_url=served.moto_url,
                region_name=REGION,
                **options,
            )

        direct = await dispatch_many(worker("thumbnail"), keys, concurrency=4, timeout=60)
        events = await dispatch_many(
            worker("thumbnail", invocation_type="Event", replies=True),
            keys,
            concurrency=4,
            timeout=60,
        )
        queued = SqsTarget(
            out["WorkQueueUrl"],
            task="thumbnail",
            replies=True,
            endpoint_url=served.moto_url,
            region_name=REGION,
        )
        through_sqs = await dispatch_many(queued, keys, concurrency=6, timeout=30, deadline=60)
        # The idempotent task keeps its keys in the template's DynamoDB table.
        orders = [{"id": "a"}, {"id": "a"}]
        charged = await dispatch_many(worker("charge"), orders, concurrency=1)
        async with client(served, "dynamodb") as dynamodb:
            kept = await dynamodb.scan(TableName=out["IdempotencyTableName"])
    assert kept["Count"] == 1  # one key, the second call answered from it
    for result in (direct, events, through_sqs):
        assert [v["key"] for v in result.values()] == keys
    assert charged.values() == ["charged a", "charged a"]


# -- the Python hook ------------------------------------------------------------------------------

RELAY = """\
import json, os, boto3

def handler(event, context):
    if event.get("fail"):
        raise RuntimeError("asked to fail")
    records = event.get("Records", [])
    for record in records:
        boto3.client("sqs").send_message(QueueUrl=os.environ["OUTBOX"], MessageBody=record["body"])
    return {"relayed": len(records)}
"""

NEEDY = """\
import aiofanout  # not in its code: serve's own, seen only in the development mode


def handler(event, context):
    return aiofanout.__name__
"""

CLOUDFORMATION = """\
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  Inbox: {Type: "AWS::SQS::Queue"}
  Outbox: {Type: "AWS::SQS::Queue"}
  Failures: {Type: "AWS::SQS::Queue", Properties: {QueueName: relay-failures}}
  RelayRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {"Fn::ImportValue": never-resolved-locally}
  Relay:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python3.11
      Handler: index.handler
      Role: !GetAtt RelayRole.Arn
      Timeout: 10
      Environment: {Variables: {OUTBOX: !Ref Outbox}}
      Code:
        ZipFile: |
%s
  RelayInbox:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !Ref Relay
      EventSourceArn: !GetAtt Inbox.Arn
      BatchSize: 5
  RelayEvents:
    Type: AWS::Lambda::EventInvokeConfig
    Properties:
      FunctionName: !GetAtt Relay.Arn
      Qualifier: $LATEST
      MaximumRetryAttempts: 0
      DestinationConfig: {OnFailure: {Destination: !GetAtt Failures.Arn}}
  Zipped:
    Type: AWS::Lambda::Function
    Properties:
      FunctionName: !Join ["-", [zipped, !Ref "AWS::StackName"]]
      Handler: echo.handler
      Code: code/echo.zip
      Role: arn:aws:iam::123456789012:role/anything
  Needy:
    Type: AWS::Lambda::Function
    Properties:
      Handler: needy.handler
      Code: code/needy
  NeedyZip:
    Type: AWS::Lambda::Function
    Properties:
      Handler: needy.handler
      Code: code/echo.zip
  Nightly:
    Type: AWS::Events::Rule
    Properties:
      ScheduleExpression: cron(0 3 * * ? *)
      Targets: [{Arn: !GetAtt Relay.Arn, Id: relay, Input: '{"Records": []}'}]
Outputs:
  Relay: {Value: !Ref Relay}
  Zipped: {Value: !Ref Zipped}
  InboxUrl: {Value: !Ref Inbox}
  OutboxUrl: {Value: !GetAtt Outbox.QueueUrl}
  FailuresUrl: {Value: !Sub "${Failures.QueueUrl}"}
"""


def cloudformation_template(directory: Path) -> Path:
    indented = "\n".join(f"          {line}" for line in RELAY.splitlines())
    (directory / "code").mkdir()
    with zipfile.ZipFile(directory / "code" / "echo.zip", "w") as archive:
        archive.writestr("echo.py", "def handler(event, context):\n    return {'echo': event}\n")
        archive.writestr("needy.py", NEEDY)
    (directory / "code" / "needy").mkdir()
    (directory / "code" / "needy" / "needy.py").write_text(NEEDY)
    path = directory / "template.yaml"
    path.write_text(CLOUDFORMATION % indented)
    return path


async def invoke(aws: Any, name: str, payload: Any, kind: str = "RequestResponse") -> Any:
    async with aws.client("lambda") as lam:
        response = await lam.invoke(
            FunctionName=name, Payload=json.dumps(payload), InvocationType=kind
        )
        answer = json.loads(await response["Payload"].read() or b"null")
    return answer if "FunctionError" not in response else ("error", answer["errorType"])


async def one_message(aws: Any, url: str) -> dict[str, Any]:
    async with aws.client("sqs") as sqs:

        async def receive() -> Any:
            return (await sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)).get("Messages")

        [message] = await eventually(receive)
    return dict(message)


async def test_a_cloudformation_template_through_the_python_hook(tmp_path: Path) -> None:
    template = Template.load(cloudformation_template(tmp_path), stack_name="relay")
    async with stack() as aws, template.deploy(aws) as deployed:
        out = deployed.outputs
        assert set(deployed.functions.values()) == {
            out["Relay"],
            "zipped-relay",
            "relay-Needy",
            "relay-NeedyZip",
        }
        assert await invoke(aws, out["Zipped"], {"a": 1}) == {"echo": {"a": 1}}
        assert await invoke(aws, out["Relay"], {"Records": []}) == {"relayed": 0}
        # The mapping feeds the inline function, which relays to the outbox.
        async with aws.client("sqs") as sqs:
            await sqs.send_message(QueueUrl=out["InboxUrl"], MessageBody="hello")
        assert (await one_message(aws, out["OutboxUrl"]))["Body"] == "hello"
        # A failed Event goes to the invoke config's destination, not retried.
        await invoke(aws, out["Relay"], {"fail": True}, kind="Event")
        record = json.loads((await one_message(aws, out["FailuresUrl"]))["Body"])
        assert record["requestContext"]["condition"] == "RetriesExhausted"
        assert record["responsePayload"]["errorMessage"] == "asked to fail"
        lines = deployed.report()
        assert "cron(0 3 * * ? *) -> relay-Relay" in lines
        assert "RelayRole" not in deployed.resources  # IAM: accepted, not created
        # Template functions run isolated, as AWS runs the package: what the code lacks is
        # missing; the development mode (a directory only) sees this process's packages.
        needy = deployed.functions["Needy"]
        assert await invoke(aws, needy, {}) == ("error", "Runtime.ImportModuleError")
        again = Template.load(tmp_path / "template.yaml", stack_name="dev")
        async with again.deploy(aws, isolated=False) as development:
            assert await invoke(aws, development.functions["Needy"], {}) == "aiofanout"
            zipped = development.functions["NeedyZip"]  # a zip: isolated either way
            assert await invoke(aws, zipped, {}) == ("error", "Runtime.ImportModuleError")
        # What the moto server refuses is an error naming the resource.
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            "Resources: {Bad: {Type: 'AWS::SQS::Queue', Properties: {QueueName: 'a b'}}}"
        )
        with pytest.raises(UsageError, match=r"Resources\.Bad: the local stack refused it"):
            async with Template.load(bad).deploy(aws):
                pass


SCHEDULED = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  Fired: {Type: "AWS::SQS::Queue"}
  Ticker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: %s
      Handler: scheduled.handler
      Runtime: python3.11
      Environment: {Variables: {FIRED_QUEUE_URL: !Ref Fired, STAGE: scheduled}}
      Events:
        EveryMinute: {Type: Schedule, Properties: {Schedule: rate(1 minute)}}
        Ticks: {Type: Schedule, Properties: {Schedule: rate(2 minutes), Input: '{"tick": 1}'}}
"""


async def an_event_of(aws: Any, url: str, event: Any) -> Any:
    """A message of the queue whose event is ``event`` (the others are taken and dropped)."""
    async with aws.client("sqs") as sqs:
        got = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    bodies = [json.loads(m["Body"]) for m in got.get("Messages", [])]
    return next((body for body in bodies if body["event"] == event), None)


async def test_a_schedule_fires_one_rate_after_it_is_created_and_stops_with_the_block(
    tmp_path: Path,
) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(SCHEDULED % TICKER)
    # A clock of a minute per second: the rate stays one minute, the test waits seconds.
    began, real = dt.datetime.now(dt.UTC), time.monotonic()

    def clock() -> dt.datetime:
        return began + dt.timedelta(seconds=(time.monotonic() - real) * 60)

    async with stack() as aws:
        before = clock().replace(microsecond=0)
        async with Template.load(path).deploy(aws, clock=clock) as deployed:
            after = clock()
            message = await one_message(aws, deployed.queues["Fired"])  # the first fire's
            # The other schedule sends its Input as the event.
            ticked = await eventually(
                functools.partial(an_event_of, aws, deployed.queues["Fired"], {"tick": 1}),
                timeout=30,
            )
        assert not [t for t in asyncio.all_tasks() if "Scheduler._run" in repr(t.get_coro())]
    assert ticked == {"event": {"tick": 1}, "stage": "scheduled"}
    body = json.loads(message["Body"])
    event = body["event"]
    assert body["stage"] == "scheduled"
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"] == [
        "arn:aws:events:us-east-1:123456789012:rule/local-TickerEveryMinute"
    ]
    fired = dt.datetime.fromisoformat(event["time"])
    # The first fire is one rate after the rule was created (within the deploy), never at once.
    assert before + dt.timedelta(minutes=1) <= fired <= after + dt.timedelta(minutes=1)
