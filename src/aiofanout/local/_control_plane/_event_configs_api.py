"""Asynchronous invocation settings of a function: ``*FunctionEventInvokeConfig`` in the API.

From botocore's service model for ``lambda``: ``PutFunctionEventInvokeConfig`` is ``PUT
/2019-09-25/functions/{name}/event-invoke-config``, ``UpdateFunctionEventInvokeConfig`` ``POST``
at the same path, ``Get...`` ``GET``, ``Delete...`` ``DELETE`` (204), and
``ListFunctionEventInvokeConfigs`` ``GET .../event-invoke-config/list``. ``Put`` overwrites
(settings left out are dropped), ``Update`` merges (settings left out stay). Destinations are
SQS queues on the moto server here (AWS also takes SNS, Lambda and EventBridge).
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .._account import function_arn
from .._events import KEY, EventInvokeConfig, event_invoke_config
from ._http import LATEST, ApiError, body_of, invalid, lookup, not_found, reply

if TYPE_CHECKING:
    from .._functions import Function, FunctionRegistry


def from_request(body: dict[str, Any]) -> EventInvokeConfig:
    """The config a ``Put`` request sets (what it leaves out is unset)."""
    return merged(EventInvokeConfig(), body)


def merged(config: EventInvokeConfig, body: dict[str, Any]) -> EventInvokeConfig:
    """``config`` with what an ``Update`` request sets (what it leaves out stays)."""
    changes: dict[str, Any] = {"last_modified": time.time()}
    if "MaximumRetryAttempts" in body:
        changes["maximum_retry_attempts"] = _in_range(body, "MaximumRetryAttempts", 0, 2)
    if "MaximumEventAgeInSeconds" in body:
        changes["maximum_event_age"] = _in_range(body, "MaximumEventAgeInSeconds", 60, 21600)
    destinations = body.get("DestinationConfig") or {}
    for member, attribute in (("OnSuccess", "on_success"), ("OnFailure", "on_failure")):
        if member in destinations:
            changes[attribute] = _destination((destinations[member] or {}).get("Destination"))
    return dataclasses.replace(config, **changes)


def to_api(config: EventInvokeConfig, function_arn: str) -> dict[str, Any]:
    """The ``FunctionEventInvokeConfig`` shape."""
    shape: dict[str, Any] = {
        "LastModified": config.last_modified,
        "FunctionArn": f"{function_arn}:$LATEST",
        "DestinationConfig": {
            "OnSuccess": {"Destination": config.on_success} if config.on_success else {},
            "OnFailure": {"Destination": config.on_failure} if config.on_failure else {},
        },
    }
    if config.maximum_retry_attempts is not None:
        shape["MaximumRetryAttempts"] = config.maximum_retry_attempts
    if config.maximum_event_age is not None:
        shape["MaximumEventAgeInSeconds"] = config.maximum_event_age
    return shape


class EventConfigsApi:
    """``Put``, ``Update``, ``Get``, ``List`` and ``Delete`` ``FunctionEventInvokeConfig``.

    A missing function is 404 in AWS's words: ``The function doesn't exist.`` for ``Put``,
    ``Update`` and ``List``; for ``Get`` and ``Delete`` the answer a function without a config
    gets, naming the qualified ARN (``...:function:NAME:$LATEST doesn't have an
    EventInvokeConfig``).
    """

    def __init__(self, functions: FunctionRegistry) -> None:
        self._functions = functions

    async def put_config(self, request: web.Request) -> web.Response:
        function = lookup(self._functions, request, missing=_no_function)
        body = await body_of(request)
        if not {"MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig"} & set(
            body
        ):
            raise invalid("You must specify at least one of error handling or destination setting.")
        config = from_request(body)
        function.settings[KEY] = config
        return reply(to_api(config, function.arn))

    async def update_config(self, request: web.Request) -> web.Response:
        function = lookup(self._functions, request, missing=_no_function)
        config = merged(
            event_invoke_config(function) or EventInvokeConfig(), await body_of(request)
        )
        function.settings[KEY] = config
        return reply(to_api(config, function.arn))

    async def get_config(self, request: web.Request) -> web.Response:
        function = lookup(self._functions, request, missing=_no_config)
        return reply(to_api(_existing(function), function.arn))

    async def delete_config(self, request: web.Request) -> web.Response:
        function = lookup(self._functions, request, missing=_no_config)
        _existing(function)
        del function.settings[KEY]
        return reply(None, status=204)

    async def list_configs(self, request: web.Request) -> web.Response:
        function = lookup(self._functions, request, missing=_no_function)
        config = event_invoke_config(function)
        configs = [to_api(config, function.arn)] if config is not None else []
        return reply({"FunctionEventInvokeConfigs": configs})


def _no_function(name: str, qualifier: str | None) -> ApiError:
    return not_found("The function doesn't exist.")


def _no_config(name: str, qualifier: str | None) -> ApiError:
    arn = f"{function_arn(name)}:{qualifier or LATEST}"
    return not_found(f"The function {arn} doesn't have an EventInvokeConfig")


def _existing(function: Function) -> EventInvokeConfig:
    config = event_invoke_config(function)
    if config is None:
        raise _no_config(function.name, None)
    return config


def _in_range(body: dict[str, Any], member: str, low: int, high: int) -> int:
    value = body[member]
    if not isinstance(value, int) or not low <= value <= high:
        raise invalid(f"{member} must be an integer from {low} to {high}, got {value!r}")
    return value


def _destination(arn: object) -> str | None:
    if arn is None or arn == "":
        return None
    if not isinstance(arn, str) or not arn.startswith("arn:aws:sqs:"):
        raise invalid(
            f"The destination {arn!r} is not supported by the local Lambda runtime: "
            "SQS queue ARNs only"
        )
    return arn
