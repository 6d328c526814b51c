"""Reserved and provisioned concurrency, as the Lambda API sets them.

From botocore's service model for ``lambda``: ``PutFunctionConcurrency`` is ``PUT
/2017-10-31/functions/{name}/concurrency``, ``GetFunctionConcurrency`` ``GET
/2019-09-30/...`` (its newer version), ``DeleteFunctionConcurrency`` ``DELETE /2017-10-31/...``
(204); ``Put/Get/DeleteProvisionedConcurrencyConfig`` are ``/2019-09-30/functions/{name}/
provisioned-concurrency`` (``Put`` answers 202 with ``Status: IN_PROGRESS``).

Reserved concurrency is the pool's limit: past it an invoke gets 429 (0 throttles every one).
Provisioned concurrency starts that many environments now, so they take invocations warm.
One deviation: AWS provisions a published version or an alias only; here ``$LATEST`` is
accepted, as there are no versions yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .._functions import Provisioned
from ._functions_api import UNRESERVED_CONCURRENCY
from ._http import ApiError, body_of, invalid, lambda_time, lookup, reply

if TYPE_CHECKING:
    from .._functions import Control, FunctionRegistry


class ConcurrencyApi:
    """Reserved (``*FunctionConcurrency``) and provisioned (``*ProvisionedConcurrencyConfig``)."""

    def __init__(self, functions: FunctionRegistry, control: Control) -> None:
        self._functions = functions
        self._control = control

    async def put_function_concurrency(self, request: web.Request) -> web.Response:
        function = lookup(self._functions, request)
        value = (await body_of(request)).get("ReservedConcurrentExecutions")
        if not isinstance(value, int) or value < 0:
            raise invalid("ReservedConcurrentExecutions must be an integer >= 0")
        function.reserved = value
        self._control.set_limit(function, value)
        return reply({"ReservedConcurrentExecutions": value})

    async def get_function_concurrency(self, request: web.Request) -> web.Response:
        function = lookup(self._functions, request)
        if function.reserved is None:
            return reply({})
        return reply({"ReservedConcurrentExecutions": function.reserved})

    async def delete_function_concurrency(self, request: web.Request) -> web.Response:
        function = lookup(self._functions, request)
        function.reserved = None
        self._control.set_limit(function, UNRESERVED_CONCURRENCY)
        return reply(None, status=204)

    async def put_provisioned_concurrency_config(self, request: web.Request) -> web.Response:
        function = lookup(self._functions, request)
        requested = (await body_of(request)).get("ProvisionedConcurrentExecutions")
        if not isinstance(requested, int) or requested < 1:
            raise invalid("ProvisionedConcurrentExecutions must be an integer >= 1")
        if requested > function.pool.limit:
            raise invalid(
                "Requested Provisioned Concurrency should not be greater than the "
                f"reservedConcurrentExecution for function ({function.pool.limit})"
            )
        provisioned = self._control.provision(function, requested)
        return reply(_shape(provisioned), status=202)

    async def get_provisioned_concurrency_config(self, request: web.Request) -> web.Response:
        function = lookup(self._functions, request)
        return reply(_shape(_provisioned(function.settings)))

    async def delete_provisioned_concurrency_config(self, request: web.Request) -> web.Response:
        function = lookup(self._functions, request)
        _provisioned(function.settings)
        del function.settings["provisioned"]  # its environments stay, as on-demand warm ones
        return reply(None, status=204)


def _provisioned(settings: dict[str, Any]) -> Provisioned:
    provisioned = settings.get("provisioned")
    if not isinstance(provisioned, Provisioned):
        raise ApiError(
            404,
            "ProvisionedConcurrencyConfigNotFoundException",
            "No Provisioned Concurrency Config found for this function",
        )
    return provisioned


def _shape(provisioned: Provisioned) -> dict[str, Any]:
    """``Get/PutProvisionedConcurrencyConfigResponse``."""
    shape: dict[str, Any] = {
        "RequestedProvisionedConcurrentExecutions": provisioned.requested,
        "AvailableProvisionedConcurrentExecutions": provisioned.allocated,
        "AllocatedProvisionedConcurrentExecutions": provisioned.allocated,
        "Status": provisioned.status,
        "LastModified": lambda_time(provisioned.last_modified),
    }
    if provisioned.reason:
        shape["StatusReason"] = provisioned.reason
    return shape
