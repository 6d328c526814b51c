"""SQS event source mappings through the Lambda API: create, get, list, update, delete.

From botocore's service model for ``lambda``: ``CreateEventSourceMapping`` is ``POST
/2015-03-31/event-source-mappings`` (202), ``GetEventSourceMapping`` ``GET .../{UUID}``,
``ListEventSourceMappings`` ``GET .../event-source-mappings`` (filters ``FunctionName``,
``EventSourceArn``), ``UpdateEventSourceMapping`` ``PUT .../{UUID}`` (202),
``DeleteEventSourceMapping`` ``DELETE .../{UUID}`` (202); each answers an
``EventSourceMappingConfiguration``. SQS sources only. The pollers are the mapping's
concurrency: ``ScalingConfig.MaximumConcurrency`` of them (at most :data:`MOST_POLLERS`
locally), else :data:`DEFAULT_POLLERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .._account import ACCOUNT, REGION, function_arn, function_name
from .._config import EventSourceMapping
from .._event_sources import Mapping, Mappings, with_changes
from ._http import (
    ApiError,
    body_of,
    function_not_found,
    invalid,
    not_found,
    page,
    reply,
    usage_errors_as_invalid,
)

if TYPE_CHECKING:
    from .._functions import FunctionRegistry

DEFAULT_POLLERS = 5  # AWS starts an SQS source at 5 concurrent batches
MOST_POLLERS = 20


class MappingsApi:
    """The ``*EventSourceMapping`` operations over a runtime's :class:`Mappings`."""

    def __init__(self, functions: FunctionRegistry, mappings: Mappings) -> None:
        self._functions = functions
        self._mappings = mappings

    async def create_mapping(self, request: web.Request) -> web.Response:
        body = await body_of(request)
        source_arn = body.get("EventSourceArn")
        if not source_arn:
            raise invalid("Unrecognized event source.")
        name = self._function(body, _function_does_not_exist)
        if not str(source_arn).startswith("arn:aws:sqs:"):
            raise invalid("The local Lambda runtime maps SQS queues only (arn:aws:sqs:...)")
        from botocore.exceptions import ClientError

        try:
            queue_url = await self._mappings.queue_url(source_arn)
        except ClientError as exc:  # the queue does not exist: as AWS reports it
            raise invalid(f"Error occurred while ReceiveMessage. SQS Error: {exc}") from exc
        with usage_errors_as_invalid():
            config = EventSourceMapping(queue_url, name, **_settings(body, None))
        self._check_unique(str(source_arn), name)
        mapping = Mapping(config, source_arn, enabled=bool(body.get("Enabled", True)))
        _describe(mapping, body)
        self._mappings.add(mapping)
        return reply(shape(mapping), status=202)

    async def get_mapping(self, request: web.Request) -> web.Response:
        return reply(shape(self._mapping(request)))

    async def list_mappings(self, request: web.Request) -> web.Response:
        name = request.query.get("FunctionName")
        source = request.query.get("EventSourceArn")
        found = [
            m
            for m in self._mappings.by_uuid.values()
            if (name is None or m.config.function == function_name(name))
            and (source is None or m.source_arn == source)
        ]
        return page(request, "EventSourceMappings", [shape(m) for m in found], max_items=100)

    async def update_mapping(self, request: web.Request) -> web.Response:
        mapping = self._mapping(request)
        body = await body_of(request)
        changes = _settings(body, mapping.config)
        if "FunctionName" in body:
            changes["function"] = self._function(body, function_not_found)
        with usage_errors_as_invalid():
            config = with_changes(mapping.config, **changes)
        enabled = bool(body.get("Enabled", mapping.enabled))
        _describe(mapping, body)
        self._mappings.update(mapping, config, enabled=enabled)
        return reply(shape(mapping), status=202)

    async def delete_mapping(self, request: web.Request) -> web.Response:
        mapping = self._mapping(request)
        self._mappings.delete(mapping)
        return reply(shape(mapping), status=202)

    def _mapping(self, request: web.Request) -> Mapping:
        mapping = self._mappings.by_uuid.get(request.match_info["uuid"])
        if mapping is None:
            raise not_found("The resource you requested does not exist.")
        return mapping

    def _function(
        self, body: dict[str, Any], missing: Callable[[str, str | None], ApiError]
    ) -> str:
        name = function_name(str(body.get("FunctionName", "")))
        if self._functions.find(name) is None:
            raise missing(name, None)
        return name

    def _check_unique(self, source_arn: str, function: str) -> None:
        """409, as AWS answers a second mapping of one queue to one function."""
        for mapping in self._mappings.by_uuid.values():
            if mapping.source_arn == source_arn and mapping.config.function == function:
                raise ApiError(
                    409,
                    "ResourceConflictException",
                    f'An event source mapping with SQS arn (" {source_arn} ") and function '
                    f'(" {function} ") already exists. Please update or delete the existing '
                    f"mapping with UUID {mapping.uuid}",
                )


def _function_does_not_exist(name: str, qualifier: str | None) -> ApiError:
    return invalid("Function does not exist")  # AWS: 400 on create, not 404


def shape(mapping: Mapping) -> dict[str, Any]:
    """The ``EventSourceMappingConfiguration`` of ``mapping``."""
    config = mapping.config
    answer: dict[str, Any] = {
        "UUID": mapping.uuid,
        "BatchSize": config.batch_size,
        "MaximumBatchingWindowInSeconds": int(config.batching_window),
        "EventSourceArn": mapping.source_arn,
        "FunctionArn": function_arn(config.function),
        "LastModified": mapping.last_modified,
        "State": mapping.state,
        "StateTransitionReason": "USER_INITIATED",
        "FunctionResponseTypes": list(mapping.response_types),
        "EventSourceMappingArn": (
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:event-source-mapping:{mapping.uuid}"
        ),
    }
    if mapping.max_concurrency is not None:
        answer["ScalingConfig"] = {"MaximumConcurrency": mapping.max_concurrency}
    return answer


def _settings(body: dict[str, Any], current: EventSourceMapping | None) -> dict[str, Any]:
    """The :class:`EventSourceMapping` fields a Create/Update request sets."""
    settings: dict[str, Any] = {}
    if current is None:  # AWS's defaults for an SQS source
        settings = {"batch_size": 10, "batching_window": 0.0, "pollers": DEFAULT_POLLERS}
        settings["report_batch_item_failures"] = False
    if "BatchSize" in body:
        settings["batch_size"] = int(body["BatchSize"])
    if "MaximumBatchingWindowInSeconds" in body:
        settings["batching_window"] = float(body["MaximumBatchingWindowInSeconds"])
    if "FunctionResponseTypes" in body:
        types = list(body["FunctionResponseTypes"] or [])
        if set(types) - {"ReportBatchItemFailures"}:
            raise invalid(f"FunctionResponseTypes takes ReportBatchItemFailures only: {types}")
        settings["report_batch_item_failures"] = "ReportBatchItemFailures" in types
    most = (body.get("ScalingConfig") or {}).get("MaximumConcurrency")
    if most is not None:
        if not isinstance(most, int) or not 2 <= most <= 1000:
            raise invalid(f"ScalingConfig.MaximumConcurrency is 2 to 1000, got {most!r}")
        settings["pollers"] = min(most, MOST_POLLERS)
    return settings


def _describe(mapping: Mapping, body: dict[str, Any]) -> None:
    """Keep what the API reports back as it was set."""
    if "FunctionResponseTypes" in body:
        mapping.response_types = list(body["FunctionResponseTypes"] or [])
    most = (body.get("ScalingConfig") or {}).get("MaximumConcurrency")
    if most is not None:
        mapping.max_concurrency = int(most)
