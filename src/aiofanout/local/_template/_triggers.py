"""What makes a function run: SQS event source mappings, schedules, and ``Event`` settings.

- ``AWS::Lambda::EventSourceMapping`` (SQS sources) starts a mapping of the runtime, with
  AWS's defaults, as ``CreateEventSourceMapping`` does: batches of 10, no partial batch
  response unless ``FunctionResponseTypes`` asks for it, ``ScalingConfig.MaximumConcurrency``
  pollers (5 without it). ``Ref`` gives its UUID.
- ``AWS::Lambda::EventInvokeConfig`` sets the function's retries, maximum event age and SQS
  destinations, as ``PutFunctionEventInvokeConfig`` does.
- ``AWS::Events::Rule`` with a ``ScheduleExpression`` fires its Lambda targets on the schedule
  (see ``_schedules``): each fire is an asynchronous (``Event``) invocation, with the function's
  retries and destinations, of the target's ``Input`` or EventBridge's scheduled event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from ..._errors import UsageError
from ..._log_fields import library_logger
from .._account import ACCOUNT, REGION, function_arn, function_name
from .._config import EventSourceMapping
from .._control_plane._mappings_api import DEFAULT_POLLERS, MOST_POLLERS
from .._event_sources import Mapping as RuntimeMapping
from .._events import KEY, EventInvokeConfig, QueuedEvent
from ._intrinsics import Created, text
from ._kinds import Context, Kind, Resource, boolean, integer, mapping, name_of_arn
from ._schedules import parse_schedule, scheduled_event

log = library_logger("aiofanout.local")


def _function(ctx: Context, properties: Mapping[str, Any], where: str) -> str:
    """The local function a trigger names (by name or ARN); it must be in the stack."""
    name = function_name(text(properties.get("FunctionName", ""), f"{where}.FunctionName"))
    if ctx.aws.runtime.functions.find(name) is None:
        raise UsageError(f"{where}.FunctionName: no local function {name!r}")
    return name


async def create_mapping(ctx: Context, resource: Resource) -> Created:
    properties = ctx.properties(resource)
    where = f"{resource.where}.Properties"
    function = _function(ctx, properties, where)
    source = text(properties.get("EventSourceArn", ""), f"{where}.EventSourceArn")
    queue = name_of_arn(source, "sqs", f"{where}.EventSourceArn")
    types = list(properties.get("FunctionResponseTypes") or [])
    if set(types) - {"ReportBatchItemFailures"}:
        raise UsageError(f"{where}.FunctionResponseTypes: ReportBatchItemFailures only: {types}")
    scaling = mapping(properties.get("ScalingConfig") or {}, f"{where}.ScalingConfig")
    most = integer(scaling, "MaximumConcurrency", f"{where}.ScalingConfig", (2, 1000))
    config = EventSourceMapping(
        await _queue_url(ctx, source, f"{where}.EventSourceArn"),
        function,
        batch_size=integer(properties, "BatchSize", where, (1, 10_000)) or 10,
        batching_window=float(
            integer(properties, "MaximumBatchingWindowInSeconds", where, (0, 300)) or 0
        ),
        report_batch_item_failures="ReportBatchItemFailures" in types,
        pollers=min(most, MOST_POLLERS) if most else DEFAULT_POLLERS,
    )
    enabled = boolean(properties.get("Enabled", True), f"{where}.Enabled")
    added = ctx.aws.runtime.mappings.add(
        RuntimeMapping(config, source, enabled=enabled, max_concurrency=most, response_types=types)
    )
    await added.settled.wait()
    state = "" if enabled else " (disabled)"
    ctx.created(
        "mapping", resource, f"{queue} -> {function}, batches of {config.batch_size}{state}"
    )
    return Created(resource.type, added.uuid)


async def _queue_url(ctx: Context, arn: str, where: str) -> str:
    from botocore.exceptions import ClientError

    try:
        return await ctx.aws.runtime.mappings.queue_url(arn)
    except ClientError as exc:
        raise UsageError(f"{where}: no queue {arn} on the local stack") from exc


MAPPING = Kind(
    "AWS::Lambda::EventSourceMapping",
    "mapping",
    create_mapping,
    frozenset(
        {
            "BatchSize",
            "Enabled",
            "EventSourceArn",
            "FunctionName",
            "FunctionResponseTypes",
            "MaximumBatchingWindowInSeconds",
            "ScalingConfig",
        }
    ),
    {"Tags": "not applied locally"},
)


async def create_invoke_config(ctx: Context, resource: Resource) -> Created:
    properties = ctx.properties(resource)
    where = f"{resource.where}.Properties"
    function = _function(ctx, properties, where)
    qualifier = text(properties.get("Qualifier", "$LATEST"), f"{where}.Qualifier")
    if qualifier != "$LATEST":
        raise UsageError(f"{where}.Qualifier: only $LATEST locally, got {qualifier!r}")
    destinations = mapping(properties.get("DestinationConfig") or {}, f"{where}.DestinationConfig")
    config = EventInvokeConfig(
        maximum_retry_attempts=integer(properties, "MaximumRetryAttempts", where, (0, 2)),
        maximum_event_age=integer(properties, "MaximumEventAgeInSeconds", where, (60, 21600)),
        on_success=_destination(destinations, "OnSuccess", f"{where}.DestinationConfig"),
        on_failure=_destination(destinations, "OnFailure", f"{where}.DestinationConfig"),
    )
    ctx.aws.runtime.functions.get(function).settings[KEY] = config
    ctx.created("invoke config", resource, _describe(function, config))
    return Created(resource.type, f"{function}:{qualifier}")


def _destination(destinations: dict[str, Any], key: str, where: str) -> str | None:
    if key not in destinations:
        return None
    arn = text(mapping(destinations[key], f"{where}.{key}").get("Destination", ""), where)
    name_of_arn(arn, "sqs", f"{where}.{key}.Destination")  # only SQS destinations locally
    return arn


def _describe(function: str, config: EventInvokeConfig) -> str:
    parts = [function]
    if config.maximum_retry_attempts is not None:
        parts.append(f"retries {config.maximum_retry_attempts}")
    if config.maximum_event_age is not None:
        parts.append(f"maximum age {config.maximum_event_age} s")
    for label, arn in (("on success", config.on_success), ("on failure", config.on_failure)):
        if arn is not None:
            parts.append(f"{label} -> {arn.rpartition(':')[2]}")
    return ", ".join(parts)


INVOKE_CONFIG = Kind(
    "AWS::Lambda::EventInvokeConfig",
    "invoke config",
    create_invoke_config,
    frozenset(
        {
            "DestinationConfig",
            "FunctionName",
            "MaximumEventAgeInSeconds",
            "MaximumRetryAttempts",
            "Qualifier",
        }
    ),
)


async def create_rule(ctx: Context, resource: Resource) -> Created:
    properties = ctx.properties(resource)
    where = f"{resource.where}.Properties"
    name = text(properties.get("Name") or ctx.physical_name(resource, limit=64), where)
    arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}"
    expression = text(properties.get("ScheduleExpression", ""), f"{where}.ScheduleExpression")
    schedule = parse_schedule(expression, f"{where}.ScheduleExpression")
    targets = [
        _target(ctx, mapping(t, f"{where}.Targets[{i}]"), f"{where}.Targets[{i}]")
        for i, t in enumerate(properties.get("Targets") or [])
    ]
    state = text(properties.get("State", "ENABLED"), f"{where}.State")
    if not boolean(properties.get("Enabled", True), f"{where}.Enabled"):  # SAM's Enabled
        state = "DISABLED"
    if state != "DISABLED":
        for function, payload in targets:
            ctx.scheduler.start(name, schedule, _firing(ctx, name, arn, function, payload))
    functions = ", ".join(function for function, _ in targets) or "no target"
    disabled = " (disabled)" if state == "DISABLED" else ""
    ctx.created("schedule", resource, f"{expression} -> {functions}{disabled}")
    return Created(resource.type, name, {"Arn": arn})


def _target(ctx: Context, target: dict[str, Any], where: str) -> tuple[str, str | None]:
    """A target's function and its fixed ``Input`` (``None``: the scheduled event)."""
    arn = text(target.get("Arn", ""), f"{where}.Arn")
    name = function_name(arn)
    if not arn.startswith("arn:aws:lambda:") or ctx.aws.runtime.functions.find(name) is None:
        raise UsageError(f"{where}.Arn: only local Lambda functions are targets here, got {arn!r}")
    if set(target) - {"Arn", "Id", "Input"}:
        raise UsageError(f"{where}: takes Arn, Id and Input locally, got {sorted(target)}")
    payload = target.get("Input")
    if payload is not None:
        payload = text(payload, f"{where}.Input")
        try:
            json.loads(payload)
        except ValueError as exc:
            raise UsageError(f"{where}.Input is not JSON: {exc}") from exc
    return name, payload


def _firing(ctx: Context, rule: str, arn: str, function: str, payload: str | None) -> Any:
    """What one fire does: queue an ``Event`` invocation, as EventBridge invokes Lambda."""

    def fire(due: Any) -> None:
        body = payload if payload is not None else json.dumps(scheduled_event(arn, due))
        target = ctx.aws.runtime.functions.find(function)
        if target is None:
            log.warning("schedule %s: the function %s is gone; not fired", rule, function)
            return
        request_id = str(uuid.uuid4())
        target.events.put(QueuedEvent(request_id, body.encode()))
        log.info("schedule %s fired %s (%s)", rule, function_arn(function), request_id)

    return fire


RULE = Kind(
    "AWS::Events::Rule",
    "schedule",
    create_rule,
    frozenset({"Enabled", "Name", "ScheduleExpression", "State", "Targets"}),
    {"Description": "kept in the template only", "RoleArn": "not enforced locally"},
    needs=("ScheduleExpression", "only scheduled rules run locally (no event patterns)"),
)
