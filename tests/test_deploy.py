"""The stack description and its SAM template: right by construction, linted by cfn-lint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aiofanout import UsageError
from aiofanout.deploy import Stack, sam_template

from .deploy_helpers import (
    EXAMPLE,
    FILTERED_TOPICS,
    TOPICS,
    cfn_lint,
    identity_statements,
    translated,
    walk,
    write_template,
)

WORKER = """
[[function]]
name = "worker"
handler = "worker.lambda_handler"
timeout = 20
"""


def stack_of(tmp_path: Path, text: str) -> Stack:
    path = tmp_path / "stack.toml"
    path.write_text(text)
    return Stack.load(path)


def resources(stack: Stack) -> dict[str, Any]:
    found: dict[str, Any] = sam_template(stack)["Resources"]
    return found


def statements_of(stack: Stack, role: str) -> dict[str, dict[str, Any]]:
    document = resources(stack)[role]["Properties"]["Policies"][0]["PolicyDocument"]
    return {s["Sid"]: s for s in document["Statement"]}


ALL_FEATURES = (
    WORKER
    + """
[claim_check]
[idempotency]
[journal]
prefix = "runs/"

[[queue]]
name = "jobs.fifo"

[[queue]]
name = "replies-shared"
replies = true

[[function]]
name = "boss"
handler = "boss.handler"
timeout = 60
architecture = "arm64"
continuation = true
invokes = ["worker"]
sends_to = ["jobs.fifo"]
gathers_replies = true
uses = ["claim_check", "idempotency", "journal"]
environment = { QUEUE = "${queue.jobs.fifo.url}", BUCKET = "${claim_check.bucket}" }
[[function.statement]]
action = ["s3:GetObject"]
resource = ["arn:aws:s3:::inputs/*"]
[[function.schedule]]
expression = "cron(0 3 * * ? *)"
[function.event_invoke_config]
on_success = "arn:aws:sqs:us-east-1:123456789012:elsewhere"

[[queue]]
name = "bulk"

[[event_source_mapping]]
queue = "jobs.fifo"
function = "worker"

[[event_source_mapping]]
queue = "bulk"
function = "worker"
batch_size = 100
batching_window = 5
"""
)


@pytest.mark.slow
def test_every_template_passes_cfn_lint_before_and_after_the_sam_transform(
    tmp_path: Path,
) -> None:
    # The real cfn-lint (SAM schemas) on the SAM templates, and again on the CloudFormation the
    # real SAM translator makes of them: no error, no warning.
    paths = []
    for name, stack in [
        ("example", Stack.load(EXAMPLE)),
        ("features", stack_of(tmp_path, ALL_FEATURES)),
        ("bare", stack_of(tmp_path, WORKER)),
        ("topics", stack_of(tmp_path, TOPICS)),  # SNS topics and subscriptions
        ("filtered", stack_of(tmp_path, FILTERED_TOPICS)),  # ... with filter policies
    ]:
        template = sam_template(stack)
        paths.append(write_template(template, tmp_path / f"{name}.yaml"))
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(translated(template)))
    assert cfn_lint(*paths) == []


@pytest.mark.slow
def test_cfn_lint_here_finds_errors(tmp_path: Path) -> None:
    # The lint above can fail: a template with a mistake does (less memory than Lambda's 128).
    template = sam_template(Stack.load(EXAMPLE))
    template["Resources"]["WorkerFunction"]["Properties"]["MemorySize"] = 100
    found = cfn_lint(write_template(template, tmp_path / "t.yaml"))
    assert [line.split(":", 5)[-1] for line in found] == [
        "E3034:100 is less than the minimum of 128"
    ]


def test_no_action_is_a_wildcard_and_every_statement_names_its_resources() -> None:
    for template in (
        sam_template(Stack.load(EXAMPLE)),
        translated(sam_template(Stack.load(EXAMPLE))),
    ):
        actions = [a for value in walk(template, "Action") for a in _listed(value)]
        assert actions
        assert [a for a in actions if "*" in a] == []
        statements = identity_statements(template)
        assert len(statements) > 10
        for statement in statements:
            assert statement["Resource"], statement
            assert "*" not in _listed(statement["Resource"]), statement


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_sqs_mappings_report_batch_item_failures_and_cap_their_concurrency() -> None:
    stack = Stack.load(EXAMPLE)
    events = resources(stack)["WorkerFunction"]["Properties"]["Events"]
    sqs = events["WorkMessages"]["Properties"]
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sqs["ScalingConfig"] == {"MaximumConcurrency": 5}
    assert sqs["Queue"] == {"Fn::GetAtt": ["WorkQueue", "Arn"]}
    assert sqs["BatchSize"] == 10


def test_a_consumed_queue_gets_a_dead_letter_queue_and_six_times_the_timeout(
    tmp_path: Path,
) -> None:
    found = resources(stack_of(tmp_path, ALL_FEATURES))
    assert found["BulkQueue"]["Properties"]["VisibilityTimeout"] == 6 * 20 + 5  # + its window
    jobs = found["JobsFifoQueue"]["Properties"]
    assert jobs["VisibilityTimeout"] == 6 * 20  # the consumer's timeout
    assert jobs["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["JobsDlqFifoQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    assert found["JobsDlqFifoQueue"]["Properties"]["FifoQueue"] is True
    assert "RedrivePolicy" not in found["RepliesSharedQueue"]["Properties"]  # not consumed


def test_a_visibility_timeout_under_six_times_its_consumer_is_refused(tmp_path: Path) -> None:
    text = WORKER + '[[queue]]\nname = "q"\nvisibility_timeout = 60\n'
    text += '[[event_source_mapping]]\nqueue = "q"\nfunction = "worker"\n'
    with pytest.raises(UsageError, match="at least 120"):
        stack_of(tmp_path, text)


def test_reply_queues_create_and_delete_for_the_sender_send_for_the_worker(
    tmp_path: Path,
) -> None:
    stack = stack_of(tmp_path, ALL_FEATURES)
    prefix = {
        "Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:aiofanout-replies-*"
    }
    gather = statements_of(stack, "BossRole")["GatherReplies"]
    assert set(gather["Action"]) == {
        "sqs:CreateQueue",
        "sqs:DeleteQueue",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
    }
    assert gather["Resource"] == [prefix]
    answer = statements_of(stack, "WorkerRole")["AnswerReplies"]  # invoked, so it answers
    assert answer["Action"] == ["sqs:SendMessage"]
    assert answer["Resource"] == [prefix, {"Fn::GetAtt": ["RepliesSharedQueue", "Arn"]}]
    assert "AnswerReplies" not in statements_of(stack, "BossRole")  # nothing invokes it


def test_an_event_worker_answers_through_its_on_failure_destination() -> None:
    stack = Stack.load(EXAMPLE)
    config = resources(stack)["WorkerFunction"]["Properties"]["EventInvokeConfig"]
    assert config == {
        "MaximumRetryAttempts": 0,
        "DestinationConfig": {
            "OnFailure": {
                "Type": "SQS",
                "Destination": {"Fn::GetAtt": ["EventRepliesQueue", "Arn"]},
            }
        },
    }
    sends = statements_of(stack, "WorkerRole")["EventDestinations"]
    assert sends["Resource"] == [{"Fn::GetAtt": ["EventRepliesQueue", "Arn"]}]


def test_an_orchestrator_that_continues_may_recurse_and_invoke_itself(tmp_path: Path) -> None:
    stack = Stack.load(EXAMPLE)
    function = resources(stack)["OrchestratorFunction"]["Properties"]
    assert function["RecursiveLoop"] == "Allow"
    invoke = statements_of(stack, "OrchestratorRole")["InvokeFunctions"]
    arns = [r["Fn::Sub"].rsplit(":", 2)[-2:] for r in invoke["Resource"]]
    assert ["function", "orchestrator"] in arns
    assert ["function", "worker"] in arns
    plain = resources(stack_of(tmp_path, WORKER))["WorkerFunction"]["Properties"]
    assert "RecursiveLoop" not in plain
    assert "InvokeFunctions" not in statements_of(stack_of(tmp_path, WORKER), "WorkerRole")


def test_continuation_needs_a_journal(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"continuation .* add \[journal\]"):
        stack_of(tmp_path, WORKER + "continuation = true\n")


def test_the_claim_bucket_expires_its_prefix_and_the_table_has_the_store_schema(
    tmp_path: Path,
) -> None:
    found = resources(stack_of(tmp_path, ALL_FEATURES))
    [rule] = found["ClaimCheckBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert (rule["Prefix"], rule["ExpirationInDays"], rule["Status"]) == (
        "aiofanout/claims/",
        1,
        "Enabled",
    )
    table = found["IdempotencyTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert found["JournalBucket"]["DeletionPolicy"] == "Retain"
    boss = statements_of(stack_of(tmp_path, ALL_FEATURES), "BossRole")
    assert boss["ClaimCheck"]["Resource"] == [
        {"Fn::Sub": "${ClaimCheckBucket.Arn}/aiofanout/claims/*"}
    ]
    assert boss["JournalList"]["Condition"] == {"StringLike": {"s3:prefix": ["runs/*"]}}
    assert boss["Own1"]["Resource"] == ["arn:aws:s3:::inputs/*"]


def test_schedules_references_and_settings_reach_the_function(tmp_path: Path) -> None:
    found = resources(stack_of(tmp_path, ALL_FEATURES))["BossFunction"]["Properties"]
    assert found["Events"]["Schedule1"] == {
        "Type": "Schedule",
        "Properties": {"Schedule": "cron(0 3 * * ? *)", "Enabled": True},
    }
    assert found["Architectures"] == ["arm64"]
    assert found["Environment"]["Variables"] == {
        "QUEUE": {"Ref": "JobsFifoQueue"},
        "BUCKET": {"Ref": "ClaimCheckBucket"},
    }
    example = resources(Stack.load(EXAMPLE))["OrchestratorFunction"]["Properties"]
    assert json.loads(example["Events"]["Schedule1"]["Properties"]["Input"]) == {
        "mode": "nightly",
        "items": 1000,
    }


def test_outputs_name_the_queues_functions_buckets_and_table() -> None:
    outputs = sam_template(Stack.load(EXAMPLE))["Outputs"]
    assert outputs["WorkQueueUrl"]["Value"] == {"Ref": "WorkQueue"}
    assert outputs["WorkDlqQueueUrl"]["Value"] == {"Ref": "WorkDlqQueue"}
    assert outputs["WorkerFunctionName"]["Value"] == {"Ref": "WorkerFunction"}
    assert {"ClaimCheckBucketName", "JournalBucketName", "IdempotencyTableName"} <= set(outputs)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (WORKER + "colour = 1\n", "colour: Extra inputs are not permitted"),
        (WORKER + "timeout2 = 1\n[x]\n", "unknown tables"),
        (WORKER + 'invokes = ["nobody"]\n', "invokes 'nobody', which is not a"),
        (WORKER + 'environment = { Q = "x" }\n', "variable names"),
        (WORKER + 'environment = { QQ = "${queue.nope.url}" }\n', "names no"),
        (WORKER + 'environment = { QQ = "${queue.url}" }\n', "a reference is one of"),
        (WORKER.replace("20", "1000"), "timeout: Input should be less than or equal to 900"),
        (WORKER + '[[function.schedule]]\nexpression = "rate(1 minutes)"\n', "rate\\(1 minute\\)"),
        (WORKER + '[[function.statement]]\naction = ["s3:*"]\nresource = ["x"]\n', "wildcards"),
        (WORKER + '[[function.statement]]\naction = ["s3:GetObject"]\nresource = ["*"]\n', "'\\*'"),
        (WORKER + WORKER, "two functions are called"),
        (
            WORKER + '[[queue]]\nname = "f.fifo"\n[[event_source_mapping]]\nqueue = "f.fifo"\n'
            'function = "worker"\nbatch_size = 11\nbatching_window = 1\n',
            "a FIFO queue's mapping takes batches of 1-10, without a batching_window",
        ),
        ('[[queue]]\nname = "aiofanout-replies-x"\n', "replies=True makes"),
        ('[[event_source_mapping]]\nqueue = "q"\nfunction = "f"\n', "not a \\[\\[queue\\]\\]"),
    ],
)
def test_a_wrong_stack_file_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        stack_of(tmp_path, text)


def test_a_timeout_lambda_cannot_take_is_refused_by_the_template(tmp_path: Path) -> None:
    stack = stack_of(tmp_path, WORKER.replace("timeout = 20", "timeout = 0.5"))
    with pytest.raises(UsageError, match="whole seconds"):
        sam_template(stack)


def test_the_local_stack_reads_the_same_description(tmp_path: Path) -> None:
    from aiofanout.local._stack import StackFile, _attributes, _local_values

    (tmp_path / "code").mkdir()
    text = ALL_FEATURES.replace(
        "timeout = 20\n", 'timeout = 20\ncode = "code"\nthrottle_after = 1.5\n'
    )
    path = tmp_path / "stack.toml"
    path.write_text(text)
    stack_file = StackFile.load(path)
    worker = next(c for c in stack_file.functions if c.name == "worker")
    assert (worker.timeout, worker.throttle_after) == (20, 1.5)
    assert worker.code_paths == [str(tmp_path / "code")]
    jobs = next(q for q in stack_file.stack.queues if q.name == "jobs.fifo")
    attributes = _attributes(stack_file.stack, jobs)
    assert attributes["VisibilityTimeout"] == "120"  # what the template says, from one place
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"].endswith(":jobs-dlq.fifo")
    urls = {q.name: f"http://local/{q.name}" for q in stack_file.stack.all_queues()}
    values = _local_values(stack_file.stack, urls)
    assert values["${queue.jobs.fifo.url}"] == "http://local/jobs.fifo"
    assert values["${claim_check.bucket}"] == "aiofanout-claims"
