"""The SAM transform, the part the local stack runs: ``Globals`` and ``AWS::Serverless::Function``.

As ``AWS::Serverless-2016-10-31`` does on AWS, each SAM function becomes CloudFormation
resources, named as SAM names them, and the rest of the package sees only those:

- ``Name``: an ``AWS::Lambda::Function`` (``CodeUri`` becomes ``Code``, ``InlineCode``
  ``Code.ZipFile``, ``Tracing`` ``TracingConfig``), and ``NameRole``, its role, when it names none;
- ``NameEvent`` for each event: an ``AWS::Lambda::EventSourceMapping`` (``SQS``), an
  ``AWS::Events::Rule`` (``Schedule``) or an ``AWS::SNS::Subscription`` of the function
  (``SNS``, with its ``NameEventPermission``); another event type is noted and left out;
- ``NameEventInvokeConfig``: an ``AWS::Lambda::EventInvokeConfig``, with a queue
  ``NameEventInvokeConfigOnFailureQueue`` (or ``OnSuccess``) for an SQS destination without one.

``Globals.Function`` is merged into every SAM function first, as SAM merges: the function's own
scalars win, mappings merge key by key, lists add up (the globals' items first).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..._errors import UsageError
from ._kinds import Note

FUNCTION = "AWS::Serverless::Function"
#: SAM's properties that only IAM reads.
IAM_PROPERTIES = ("Policies", "PermissionsBoundary", "AssumeRolePolicyDocument", "RolePath")


def expand(resources: Mapping[str, Any], globals_: Any, notes: list[Note]) -> dict[str, Any]:
    """``resources`` with each SAM function replaced by what SAM makes of it."""
    defaults = _function_globals(globals_, notes)
    expanded: dict[str, Any] = {}
    for name, body in resources.items():
        if not isinstance(body, dict) or body.get("Type") != FUNCTION:
            made = {name: body}
        else:
            merged = merge(defaults, body.get("Properties") or {})
            made = _function(name, body, merged, notes)
        for made_name, made_body in made.items():
            if made_name in expanded or (made_name != name and made_name in resources):
                raise UsageError(
                    f"Resources.{made_name}: SAM makes a resource of this name from {name}; "
                    "rename the one in the template"
                )
            expanded[made_name] = made_body
    return expanded


def _function_globals(globals_: Any, notes: list[Note]) -> dict[str, Any]:
    if globals_ is None:
        return {}
    if not isinstance(globals_, dict):
        raise UsageError("Globals: expected a mapping of sections (Function, ...)")
    for section in sorted(set(globals_) - {"Function"}):
        notes.append(Note(f"Globals.{section}", "not supported locally, ignored"))
    function = globals_.get("Function") or {}
    if not isinstance(function, dict):
        raise UsageError("Globals.Function: expected a mapping of function properties")
    return function


def merge(defaults: Any, own: Any) -> Any:
    """SAM's merge of a ``Globals`` value with a resource's own."""
    if _is_mapping(defaults) and _is_mapping(own):
        merged = dict(defaults)
        for key, value in own.items():
            merged[key] = merge(defaults[key], value) if key in defaults else value
        return merged
    if isinstance(defaults, list) and isinstance(own, list):
        return [*defaults, *own]
    return own


def _is_mapping(value: Any) -> bool:
    """A plain mapping, not an intrinsic function (which is a value, replaced whole)."""
    if not isinstance(value, dict):
        return False
    if len(value) != 1:
        return True
    key = next(iter(value))
    return not (key in ("Ref", "Condition") or key.startswith("Fn::"))


def _function(name: str, body: dict[str, Any], props: dict[str, Any], notes: list[Note]) -> Any:
    where = f"Resources.{name}.Properties"
    attributes = {k: v for k, v in body.items() if k in ("Condition", "DependsOn")}
    own = {k: v for k, v in attributes.items() if k == "Condition"}
    lambda_props = _lambda_properties(props, where, notes)
    made: dict[str, Any] = {
        name: {**attributes, "Type": "AWS::Lambda::Function", "Properties": lambda_props}
    }
    if "Role" not in props:
        made[f"{name}Role"] = {**own, "Type": "AWS::IAM::Role", "Properties": {}}
    events = props.get("Events") or {}
    if not isinstance(events, dict):
        raise UsageError(f"{where}.Events: expected a mapping of events")
    for event, spec in events.items():
        made.update(_event(name, event, spec, f"{where}.Events.{event}", notes, own))
    if props.get("EventInvokeConfig") is not None:
        made.update(_invoke_config(name, props["EventInvokeConfig"], where, own))
    for made_body in made.values():
        made_body["Metadata"] = {"SamResourceId": name}
    return made


def _lambda_properties(props: dict[str, Any], where: str, notes: list[Note]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in props.items():
        if key in ("Events", "EventInvokeConfig"):
            continue
        if key in IAM_PROPERTIES:
            notes.append(Note(f"{where}.{key}", "not enforced locally", logging.INFO, False))
        elif key == "InlineCode":
            out["Code"] = {"ZipFile": value}
        elif key == "CodeUri":
            out["Code"] = _code_uri(value)
        elif key == "Tracing":
            out["TracingConfig"] = {"Mode": value}
        else:
            out[key] = value
    return out


def _code_uri(value: Any) -> Any:
    """A local path stays one; S3 locations become ``Code``'s S3 form (refused when read)."""
    if isinstance(value, str) and value.startswith("s3://"):
        bucket, _, key = value.removeprefix("s3://").partition("/")
        return {"S3Bucket": bucket, "S3Key": key}
    if isinstance(value, dict) and "Bucket" in value:
        return {"S3Bucket": value["Bucket"], "S3Key": value.get("Key")}
    return value


def _event(
    function: str, event: str, spec: Any, where: str, notes: list[Note], own: dict[str, Any]
) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise UsageError(f"{where}: expected a mapping with Type and Properties")
    kind, props = spec.get("Type"), dict(spec.get("Properties") or {})
    if kind == "SQS":
        props["FunctionName"] = {"Ref": function}
        if "Queue" in props:
            props["EventSourceArn"] = props.pop("Queue")
        return {f"{function}{event}": _resource("AWS::Lambda::EventSourceMapping", props, own)}
    if kind == "Schedule":
        return {
            f"{function}{event}": _resource("AWS::Events::Rule", _rule(function, event, props), own)
        }
    if kind == "SNS":
        return _sns(function, event, props, where, notes, own)
    notes.append(Note(where, f"event type {kind} is not supported locally, left out"))
    return {}


def _sns(
    function: str,
    event: str,
    props: dict[str, Any],
    where: str,
    notes: list[Note],
    own: dict[str, Any],
) -> dict[str, Any]:
    if "SqsSubscription" in props:  # SAM puts a queue between: not made locally
        notes.append(Note(f"{where}.SqsSubscription", "not supported locally, left out"))
        return {}
    subscription = {
        "Protocol": "lambda",
        "Endpoint": {"Fn::GetAtt": [function, "Arn"]},
        "TopicArn": props.pop("Topic", None),
        **props,
    }
    permission = {
        "Action": "lambda:InvokeFunction",
        "FunctionName": {"Ref": function},
        "Principal": "sns.amazonaws.com",
        "SourceArn": subscription["TopicArn"],
    }
    return {
        f"{function}{event}": _resource("AWS::SNS::Subscription", subscription, own),
        f"{function}{event}Permission": _resource("AWS::Lambda::Permission", permission, own),
    }


def _rule(function: str, event: str, props: dict[str, Any]) -> dict[str, Any]:
    target: dict[str, Any] = {"Arn": {"Fn::GetAtt": [function, "Arn"]}, "Id": f"{function}{event}"}
    if "Input" in props:
        target["Input"] = props.pop("Input")
    rule = {"Targets": [target]}
    if "Schedule" in props:
        rule["ScheduleExpression"] = props.pop("Schedule")
    return {**props, **rule}


def _invoke_config(function: str, spec: Any, where: str, own: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise UsageError(f"{where}.EventInvokeConfig: expected a mapping")
    name = f"{function}EventInvokeConfig"
    props = {k: v for k, v in spec.items() if k != "DestinationConfig"}
    made: dict[str, Any] = {}
    destinations = {}
    for key, destination in (spec.get("DestinationConfig") or {}).items():
        if not isinstance(destination, dict):
            raise UsageError(f"{where}.EventInvokeConfig.DestinationConfig.{key}: a mapping")
        arn = destination.get("Destination")
        if arn is None and destination.get("Type") == "SQS":  # SAM makes the queue
            made[f"{name}{key}Queue"] = _resource("AWS::SQS::Queue", {}, own)
            arn = {"Fn::GetAtt": [f"{name}{key}Queue", "Arn"]}
        destinations[key] = {"Destination": arn}
    if destinations:
        props["DestinationConfig"] = destinations
    props |= {"FunctionName": {"Ref": function}, "Qualifier": "$LATEST"}
    made[name] = _resource("AWS::Lambda::EventInvokeConfig", props, own)
    return made


def _resource(kind: str, props: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    return {**own, "Type": kind, "Properties": props}
