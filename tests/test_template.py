"""Reading a template for ``serve --template``: tags, intrinsics, parameters, SAM, order, schedules.

No server starts here: what can be checked before anything is created is checked by
``Template.load`` (and the internals it is made of, imported inside the tests that need them);
the schedules are in ``test_template_schedules.py``, the end-to-end runs in
``test_template_stack.py``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiofanout import UsageError
from aiofanout.local import Template

NAMES = st.from_regex(r"[A-Z][A-Za-z0-9]{0,11}", fullmatch=True)
LITERALS = st.text(st.characters(blacklist_characters="${}", codec="utf-8"), max_size=12)


def write(directory: Path, text: str) -> Path:
    path = directory / "template.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def document(path: Path, **parameters: str) -> Any:
    from aiofanout.local._template._deploy import KINDS
    from aiofanout.local._template._document import read_document

    return read_document(path, parameters=parameters, strict=False, stack_name="s", kinds=KINDS)


def resolver(**values: Any) -> Any:
    from aiofanout.local._template._intrinsics import Resolver, pseudo_parameters

    return Resolver({**values, **pseudo_parameters("s")})


# -- YAML ---------------------------------------------------------------------------------------


def test_short_tags_load_as_their_long_forms_and_dates_stay_strings(tmp_path: Path) -> None:
    from aiofanout.local._template._yaml import read_template

    path = write(
        tmp_path,
        """\
        AWSTemplateFormatVersion: 2010-09-09
        Resources:
          R:
            Type: T
            Properties:
              A: !Ref X
              B: !GetAtt Q.Arn
              C: !GetAtt Db.Endpoint.Address
              D: !Sub ["${a}-x", {a: !Ref B}]
              E: !Join [",", [a, !Select [0, !Split [",", "p,q"]]]]
              F: !If [IsDev, !Base64 x, !Ref AWS::NoValue]
              G: !Not [!Condition IsDev]
        """,
    )
    properties = read_template(path)["Resources"]["R"]["Properties"]
    assert read_template(path)["AWSTemplateFormatVersion"] == "2010-09-09"
    assert properties == {
        "A": {"Ref": "X"},
        "B": {"Fn::GetAtt": ["Q", "Arn"]},
        "C": {"Fn::GetAtt": ["Db", "Endpoint.Address"]},
        "D": {"Fn::Sub": ["${a}-x", {"a": {"Ref": "B"}}]},
        "E": {"Fn::Join": [",", ["a", {"Fn::Select": [0, {"Fn::Split": [",", "p,q"]}]}]]},
        "F": {"Fn::If": ["IsDev", {"Fn::Base64": "x"}, {"Ref": "AWS::NoValue"}]},
        "G": {"Fn::Not": [{"Condition": "IsDev"}]},
    }


def test_an_unknown_tag_or_no_resources_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown tag !Nope"):
        Template.load(write(tmp_path, "Resources: {R: {Type: T, Properties: {A: !Nope x}}}"))
    with pytest.raises(UsageError, match="needs a Resources section"):
        Template.load(write(tmp_path, "Outputs: {}"))


def test_a_stack_name_is_checked_as_cloudformation_checks_it(tmp_path: Path) -> None:
    path = write(tmp_path, "Resources: {Q: {Type: 'AWS::SQS::Queue'}}")
    with pytest.raises(UsageError, match="a letter, then letters, digits and hyphens"):
        Template.load(path, stack_name="my stack")
    Template.load(path, stack_name="my-stack-2")


def test_a_json_template_loads(tmp_path: Path) -> None:
    path = tmp_path / "template.json"
    path.write_text('{"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}')
    assert Template.load(path).notes == ()


# -- intrinsics ---------------------------------------------------------------------------------


@settings(max_examples=50)  # each example draws a value per name: well under a second
@given(st.lists(st.tuples(LITERALS, NAMES), max_size=6), LITERALS, st.data())
def test_sub_replaces_each_variable_and_keeps_the_rest(
    parts: list[tuple[str, str]], tail: str, data: st.DataObject
) -> None:
    values = {name: data.draw(LITERALS, label=name) for _, name in parts}
    template = "".join(f"{literal}${{{name}}}" for literal, name in parts) + tail
    expected = "".join(f"{literal}{values[name]}" for literal, name in parts) + tail
    # The string form reads parameters; the list form its own variables, over parameters.
    assert resolver(**values).resolve({"Fn::Sub": template}, "x") == expected
    shadowed = dict.fromkeys(values, "parameter")
    assert resolver(**shadowed).resolve({"Fn::Sub": [template, values]}, "x") == expected


@given(st.lists(LITERALS.filter(lambda s: "|" not in s), min_size=1, max_size=8))
def test_join_and_split_are_inverses(items: list[str]) -> None:
    joined = resolver().resolve({"Fn::Join": ["|", items]}, "x")
    assert joined == "|".join(items)
    assert resolver(J=joined).resolve({"Fn::Split": ["|", {"Ref": "J"}]}, "x") == items


def test_refs_getatts_and_pseudo_parameters_resolve() -> None:
    from aiofanout.local._template._intrinsics import Created

    r = resolver(Stage="dev")
    r.created["Q"] = Created("AWS::SQS::Queue", "http://q", {"Arn": "arn:q", "QueueName": "q"})
    value = {
        "url": {"Ref": "Q"},
        "arn": {"Fn::GetAtt": ["Q", "Arn"]},
        "dotted": {"Fn::GetAtt": "Q.QueueName"},
        "sub": {"Fn::Sub": "${AWS::Region}:${AWS::AccountId}:${AWS::StackName}:${Q.Arn}:${!Q}"},
        "join": {"Fn::Join": ["-", [{"Ref": "Stage"}, 7, True]]},
        "gone": {"Ref": "AWS::NoValue"},
        "list": ["a", {"Ref": "AWS::NoValue"}, "b"],
    }
    assert r.resolve(value, "x") == {
        "url": "http://q",
        "arn": "arn:q",
        "dotted": "q",
        "sub": "us-east-1:123456789012:s:arn:q:${Q}",
        "join": "dev-7-true",
        "list": ["a", "b"],
    }
    with pytest.raises(UsageError, match=r"Fn::GetAtt Q\.Nope: .*has no 'Nope' \(it has Arn, Qu"):
        r.resolve({"Fn::GetAtt": ["Q", "Nope"]}, "Outputs.X")
    with pytest.raises(
        UsageError, match=r"Outputs\.X\.a: Fn::ImportValue is not supported locally"
    ):
        r.resolve({"a": {"Fn::ImportValue": "e"}}, "Outputs.X")
    placeholder = Created("AWS::IAM::Role", "Role", placeholder=True)
    r.created["Role"] = placeholder
    assert r.resolve({"Fn::GetAtt": ["Role", "Arn"]}, "x") == "Role.Arn (not created locally)"


def test_conditions_if_select_and_find_in_map() -> None:
    from aiofanout.local._template._intrinsics import Resolver, pseudo_parameters

    conditions = {
        "IsDev": {"Fn::Equals": [{"Ref": "Stage"}, "dev"]},
        "Big": {"Fn::Equals": [{"Ref": "Size"}, 3]},  # a parameter's string is "3"
        "Both": {"Fn::And": [{"Condition": "IsDev"}, {"Condition": "Big"}]},
        "Neither": {"Fn::Not": [{"Fn::Or": [{"Condition": "IsDev"}, {"Condition": "Big"}]}]},
        "Loop": {"Fn::Not": [{"Condition": "Loop"}]},
    }
    mappings = {"Sizes": {"dev": {"Memory": 256}}}
    r = Resolver({"Stage": "dev", "Size": "3", **pseudo_parameters("s")}, conditions, mappings)
    assert r.resolve({"Fn::If": ["Both", "yes", "no"]}, "x") == "yes"
    assert r.resolve({"Fn::If": ["Neither", "yes", {"Ref": "AWS::NoValue"}]}, "x") is not None
    assert r.resolve({"k": {"Fn::If": ["Neither", "yes", {"Ref": "AWS::NoValue"}]}}, "x") == {}
    assert r.resolve({"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "Memory"]}, "x") == 256
    assert r.resolve({"Fn::Select": ["1", ["a", "b"]]}, "x") == "b"
    with pytest.raises(UsageError, match=r"Conditions\.Loop refers to itself"):
        r.condition("Loop", "x")
    with pytest.raises(UsageError, match="no condition named 'Nope'"):
        r.resolve({"Fn::If": ["Nope", 1, 2]}, "x")
    with pytest.raises(UsageError, match="past the 2 values"):
        r.resolve({"Fn::Select": [5, ["a", "b"]]}, "x")


# -- parameters, conditions ---------------------------------------------------------------------

PARAMETERS = """\
Parameters:
  Stage: {Type: String, Default: test, AllowedValues: [test, dev]}
  Timeout: {Type: Number, Default: 30, MinValue: 1, MaxValue: 900}
  Names: {Type: CommaDelimitedList, Default: "a, b"}
  Required: {Type: String, AllowedPattern: "[a-z]+"}
Conditions:
  IsDev: !Equals [!Ref Stage, dev]
Resources:
  Always: {Type: "AWS::SQS::Queue"}
  DevOnly: {Type: "AWS::SQS::Queue", Condition: IsDev}
"""


def test_parameters_take_their_default_or_the_override(tmp_path: Path) -> None:
    path = write(tmp_path, PARAMETERS)
    read = document(path, Required="x")
    assert (read.values["Stage"], read.values["Timeout"]) == ("test", "30")
    assert read.values["Names"] == ["a", "b"]
    assert list(read.resources) == ["Always"]  # IsDev is false: DevOnly is not created
    overridden = document(path, Required="x", Stage="dev", Timeout="60")
    assert (overridden.values["Stage"], overridden.values["Timeout"]) == ("dev", "60")
    assert list(overridden.resources) == ["Always", "DevOnly"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "Parameters.Required has no Default: pass --parameter Required=VALUE"),
        ({"Required": "x", "Stage": "prod"}, r"'prod' is not one of \['test', 'dev'\]"),
        ({"Required": "x", "Timeout": "901"}, "901 is not within MinValue-MaxValue"),
        ({"Required": "x", "Timeout": "soon"}, "'soon' is not a Number"),
        ({"Required": "X1"}, "does not match AllowedPattern"),
        ({"Required": "x", "Stag": "dev"}, r"--parameter Stag: the template has no such"),
    ],
)
def test_a_bad_parameter_value_is_refused_naming_it(
    tmp_path: Path, overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        Template.load(write(tmp_path, PARAMETERS), parameters=overrides)


# -- SAM ----------------------------------------------------------------------------------------

SAM = """\
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.11
    Timeout: 10
    Layers: [a]
    Environment: {Variables: {STAGE: test, SHARED: globals}}
Resources:
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties: {FunctionName: !Ref Worker, EventSourceArn: !GetAtt Work.Arn}
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src
      Handler: worker.lambda_handler
      Timeout: 30
      Layers: [b]
      Environment: {Variables: {STAGE: !Ref AWS::StackName, OWN: !Ref Work}}
      Policies: [AWSLambdaBasicExecutionRole]
      EventInvokeConfig:
        MaximumRetryAttempts: 1
        DestinationConfig: {OnFailure: {Type: SQS}}
      Events:
        Work: {Type: SQS, Properties: {Queue: !GetAtt Work.Arn, BatchSize: 5}}
        Nightly: {Type: Schedule, Properties: {Schedule: rate(1 day), Input: '{}', Enabled: false}}
        Web: {Type: Api, Properties: {Path: /, Method: get}}
  Work:
    Type: AWS::SQS::Queue
    Properties: {RedrivePolicy: {deadLetterTargetArn: !GetAtt Dead.Arn, maxReceiveCount: 3}}
  Dead: {Type: "AWS::SQS::Queue"}
"""


def test_a_sam_function_becomes_what_sam_makes_of_it_in_dependency_order(tmp_path: Path) -> None:
    read = document(write(tmp_path, SAM))
    kinds = {name: r.type for name, r in read.resources.items()}
    assert kinds == {
        "Dead": "AWS::SQS::Queue",
        "Work": "AWS::SQS::Queue",
        "WorkerEventInvokeConfigOnFailureQueue": "AWS::SQS::Queue",
        "WorkerRole": "AWS::IAM::Role",
        "Worker": "AWS::Lambda::Function",
        "Mapping": "AWS::Lambda::EventSourceMapping",
        "WorkerWork": "AWS::Lambda::EventSourceMapping",
        "WorkerNightly": "AWS::Events::Rule",
        "WorkerEventInvokeConfig": "AWS::Lambda::EventInvokeConfig",
    }
    order = list(read.resources)
    # Each after what it refers to: the queues before the function, the function before its
    # mappings (the template listed Mapping first, Dead last).
    assert order.index("Dead") < order.index("Work") < order.index("Worker")
    assert order.index("Worker") < order.index("Mapping")
    function = read.resources["Worker"].properties
    # Globals merged as SAM merges: own scalars win, mappings merge, lists add up.
    assert function["Timeout"] == 30
    assert function["Runtime"] == "python3.11"
    assert function["Layers"] == ["a", "b"]
    assert function["Environment"]["Variables"] == {
        "STAGE": {"Ref": "AWS::StackName"},
        "SHARED": "globals",
        "OWN": {"Ref": "Work"},
    }
    assert function["Code"] == "src"
    rule = read.resources["WorkerNightly"].properties
    assert rule["ScheduleExpression"] == "rate(1 day)"
    assert rule["Targets"] == [
        {"Arn": {"Fn::GetAtt": ["Worker", "Arn"]}, "Id": "WorkerNightly", "Input": "{}"}
    ]
    notes = [str(note) for note in read.notes]
    assert (
        "Resources.Worker.Properties.Events.Web: event type Api is not supported locally, left out"
        in notes
    )
    assert "Resources.Worker.Properties.Layers: not supported locally, ignored" in notes
    assert "Resources.Worker.Properties.Policies: not enforced locally" in notes


def test_a_reference_cycle_is_refused_naming_the_cycle(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        Resources:
          Start: {Type: "AWS::SQS::Queue"}
          A:
            Type: AWS::SQS::Queue
            Properties: {RedrivePolicy: {deadLetterTargetArn: !GetAtt B.Arn, maxReceiveCount: 3}}
          B:
            Type: AWS::SQS::Queue
            Properties: {QueueName: !Sub "${C}-b"}
          C:
            Type: AWS::SQS::Queue
            DependsOn: A
        """,
    )
    with pytest.raises(UsageError, match=r"a reference cycle: A -> B -> C -> A; CloudFormation"):
        Template.load(path)


def test_a_reference_to_nothing_is_refused_naming_where(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        Resources:
          Q: {Type: "AWS::SQS::Queue", Properties: {QueueName: !Sub "${Missing}-q"}}
        """,
    )
    with pytest.raises(UsageError, match=r"Resources\.Q: refers to 'Missing', which is not a"):
        Template.load(path)
    outputs = write(
        tmp_path, "Resources: {Q: {Type: 'AWS::SQS::Queue'}}\nOutputs: {O: {Value: !Ref Gone}}"
    )
    with pytest.raises(UsageError, match=r"Outputs\.O: refers to 'Gone'"):
        Template.load(outputs)


UNSUPPORTED = """\
Resources:
  Role: {Type: "AWS::IAM::Role", Properties: {AssumeRolePolicyDocument: {}}}
  Topic: {Type: "AWS::Kinesis::Stream"}
  Queue:
    Type: AWS::SQS::Queue
    Properties: {Tags: [{Key: a, Value: b}], SomethingNew: 1}
"""


def test_what_is_outside_the_subset_is_skipped_with_a_warning_or_refused_by_strict(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, UNSUPPORTED)
    notes = Template.load(path).notes
    assert "Resources.Topic (AWS::Kinesis::Stream): not supported locally, skipped" in notes
    assert "Resources.Queue.Properties.SomethingNew: not supported locally, ignored" in notes
    assert "Resources.Role (AWS::IAM::Role): not enforced locally" in notes
    with pytest.raises(UsageError) as refused:
        Template.load(path, strict=True)
    lines = str(refused.value).splitlines()
    # One line each for what AWS would do and the local stack would not; IAM and Tags are fine.
    assert lines[1:] == [
        "  Resources.Topic (AWS::Kinesis::Stream): not supported locally, skipped",
        "  Resources.Queue.Properties.SomethingNew: not supported locally, ignored",
    ]


def test_serve_strict_refuses_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiofanout._cli import main

    path = write(tmp_path, UNSUPPORTED)
    assert main(["serve", "--template", str(path), "--strict"]) == 2
    error = capsys.readouterr().err
    assert "Resources.Topic (AWS::Kinesis::Stream): not supported locally, skipped" in error
    assert main(["serve", "--template", str(path), "--parameter", "novalue"]) == 2
    assert "--parameter takes KEY=VALUE, got 'novalue'" in capsys.readouterr().err
    assert main(["serve", "--strict"]) == 2
    assert "--parameter and --strict go with --template" in capsys.readouterr().err


def test_serve_help_lists_the_subset(capsys: pytest.CaptureFixture[str]) -> None:
    from aiofanout._cli import main

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for name in ("--template", "--strict", "--parameter", "AWS::Serverless::Function", "Fn::Sub"):
        assert name in out


def test_outputs_with_a_false_condition_are_left_out() -> None:
    from aiofanout.local._template._deploy import _outputs
    from aiofanout.local._template._intrinsics import Resolver

    r = Resolver({"Stage": "test"}, {"IsDev": {"Fn::Equals": [{"Ref": "Stage"}, "dev"]}})
    outputs = {
        "Dev": {"Value": "x", "Condition": "IsDev"},
        "Stage": {"Value": {"Ref": "Stage"}},
        "List": {"Value": {"Fn::Split": [",", "a,b"]}},
    }
    assert _outputs(outputs, r) == {"Stage": "test", "List": "a,b"}
