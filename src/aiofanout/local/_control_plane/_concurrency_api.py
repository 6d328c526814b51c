"""Reserved and provisioned concurrency, as the Lambda API sets them.

From botocore's service model for ``lambda``: ``PutFunctionConcurrency`` is ``PUT
/2017-10-31/functions/{name}/concurrency``, ``GetFunctionConcurrency`` ``GET
/2019-09-30/...`` (its newer version), ``DeleteFunctionConcurrency`` ``DELETE /2017-10-31/...``
(204); ``Put/Get/DeleteProvisionedConcurrencyConfig`` are ``/2019-09-30/functions/{name}/
provisioned-concurrency``.

Reserved concurrency is the pool's limit: past it an invoke gets 429 (0 throttles every one).
As on AWS, a reservation names the function itself (a qualified ARN is 400), and may not leave
the account less unreserved concurrency than its minimum (:class:`AccountLimits`).

Provisioned concurrency applies to a published version or an alias only (AWS's API reference);
the local runtime has neither, so ``$LATEST`` is refused in AWS's words and any other qualifier
is not found, as on AWS for one that does not exist.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aiohttp import web

from .._account import function_arn
from .._functions import unreserved
from ._functions_api import UNRESERVED_CONCURRENCY
from ._http import (
    LATEST,
    ApiError,
    address_of,
    body_of,
    function_not_found,
    invalid,
    lookup,
    not_found,
    reply,
)

if TYPE_CHECKING:
    from .._config import AccountLimits
    from .._functions import Control, Function, FunctionRegistry

_UNQUALIFIED_ONLY = (
    "This operation is permitted on Lambda functions only. Aliases and versions do not support "
    "this operation. Please specify either a function name or an unqualified function ARN."
)


class ConcurrencyApi:
    """Reserved (``*FunctionConcurrency``) and provisioned (``*ProvisionedConcurrencyConfig``)."""

    def __init__(
        self, functions: FunctionRegistry, control: Control, account: AccountLimits
    ) -> None:
        self._functions = functions
        self._control = control
        self._account = account

    async def put_reserved(self, request: web.Request) -> web.Response:
        function = self._unqualified(request)
        value = int((await body_of(request))["ReservedConcurrentExecutions"])  # model-checked
        left = unreserved(self._functions, self._account) + (function.reserved or 0) - value
        least = self._account.least_unreserved
        if left < least:
            raise invalid(
                "Specified ReservedConcurrentExecutions for function decreases account's "
                f"UnreservedConcurrentExecution below its minimum value of [{least}]."
            )
        function.reserved = value
        self._control.set_limit(function, value)
        return reply({"ReservedConcurrentExecutions": value})

    async def get_reserved(self, request: web.Request) -> web.Response:
        function = lookup(self._functions, request)
        if function.reserved is None:
            return reply({})
        return reply({"ReservedConcurrentExecutions": function.reserved})

    async def delete_reserved(self, request: web.Request) -> web.Response:
        function = self._unqualified(request)
        function.reserved = None
        self._control.set_limit(function, UNRESERVED_CONCURRENCY)
        return reply(None, status=204)

    def _unqualified(self, request: web.Request) -> Function:
        """The function a reservation names: never a version or an alias (AWS's checks, order)."""
        name, qualifier = address_of(request)
        if qualifier is not None:
            raise invalid(_UNQUALIFIED_ONLY)
        function = self._functions.find(name)
        if function is None:
            raise function_not_found(name, LATEST)  # AWS names $LATEST here
        return function

    async def put_provisioned(self, request: web.Request) -> web.Response:
        raise _no_version(request, "put")

    async def get_provisioned(self, request: web.Request) -> web.Response:
        raise _no_version(request, "get")

    async def delete_provisioned(self, request: web.Request) -> web.Response:
        raise _no_version(request, "delete")


def _no_version(request: web.Request, verb: str) -> ApiError:
    """AWS's answer for a provisioned-concurrency qualifier with no published version behind it."""
    name, qualifier = address_of(request)
    if qualifier == LATEST and verb == "put":
        return invalid(
            "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
        )
    if qualifier == LATEST:
        return invalid("The function resource provided must be an alias or a published version.")
    if qualifier is not None and re.fullmatch("[0-9]+", qualifier):
        return function_not_found(name, qualifier)  # a version that was never published
    return not_found(f"Cannot find alias arn: {function_arn(name)}:{qualifier}")
