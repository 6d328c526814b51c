"""What every route of the local Lambda API shares: AWS's JSON errors, bodies, the function lookup.

An operation raises :class:`ApiError` and :func:`aws_errors` (a middleware) answers it in AWS's
error shape: the status code, ``x-amzn-ErrorType`` naming the exception botocore raises, and a
JSON body with ``Type`` and ``message`` (``Message`` for ``ResourceNotFoundException``, as the
service model spells that member). A path no route serves is answered the same way, naming the
operation botocore would call there (:func:`unsupported_operation`).
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ._aws import function_arn, function_name
from ._functions import Function, FunctionRegistry

JSON = "application/json"
LATEST = "$LATEST"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An AWS API error: answered with ``status``, ``x-amzn-ErrorType: code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def not_found(message: str) -> ApiError:
    """404 ``ResourceNotFoundException``."""
    return ApiError(404, "ResourceNotFoundException", message)


def invalid(message: str) -> ApiError:
    """400 ``InvalidParameterValueException``."""
    return ApiError(400, "InvalidParameterValueException", message)


def api_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    """An AWS JSON error response (``x-amzn-ErrorType`` names the exception botocore raises)."""
    key = "Message" if code == "ResourceNotFoundException" else "message"
    body: dict[str, Any] = {"Type": "User", key: message, **extra}
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=JSON,
        headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def reply(body: dict[str, Any] | None, status: int = 200) -> web.Response:
    """A JSON answer (``None``: an empty one, as ``Delete*`` answers 204)."""
    headers = {"x-amzn-RequestId": str(uuid.uuid4())}
    if body is None:
        return web.Response(status=status, headers=headers)
    return web.Response(
        status=status, body=json.dumps(body).encode(), content_type=JSON, headers=headers
    )


@web.middleware
async def aws_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer an :class:`ApiError` raised by an operation in AWS's error shape."""
    try:
        return await handler(request)
    except ApiError as exc:
        return api_error(exc.status, exc.code, exc.message, **exc.extra)


#: What a web page may send without a CORS preflight: never a control-plane write here.
_BROWSER_BODIES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
_WRITES = ("POST", "PUT", "PATCH", "DELETE")


@web.middleware
async def loopback_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse what a browser could send: a foreign ``Host``, an ``Origin``, a form body.

    The runtime binds 127.0.0.1, but a web page can still reach it: a cross-site POST (CSRF)
    or a name of the attacker's that resolves to 127.0.0.1 (DNS rebinding) would create and
    run a function. SDKs, the AWS CLI and awslambdaric send ``Host: 127.0.0.1:<port>``, no
    ``Origin`` and JSON bodies.
    """
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    port = sockname[1] if isinstance(sockname, tuple) else None
    if request.host not in (f"127.0.0.1:{port}", f"localhost:{port}"):
        return api_error(403, "AccessDeniedException", f"Host {request.host!r} is not served here")
    if "Origin" in request.headers:
        return api_error(403, "AccessDeniedException", "requests from web pages are refused")
    if request.method in _WRITES and request.content_type in _BROWSER_BODIES:
        return api_error(
            415, "UnsupportedMediaTypeException", f"a {request.content_type} body is refused"
        )
    return await handler(request)


async def body_of(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (400 ``InvalidRequestContentException`` if it is not one)."""
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise ApiError(
            400, "InvalidRequestContentException", f"Could not parse request body into json: {exc}"
        ) from exc
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidRequestContentException", "The request body must be an object")
    return body


def lookup(functions: FunctionRegistry, request: web.Request) -> Function:
    """The function a ``{name}`` path names, at the ``Qualifier`` (only ``$LATEST`` here).

    As on AWS, a missing function or an unknown qualifier is 404 ``ResourceNotFoundException``
    whose message names the ARN.
    """
    name = function_name(request.match_info["name"]).partition(":")[0]
    qualifier = request.query.get("Qualifier") or _qualifier_in(request.match_info["name"])
    function = functions.find(name)
    if function is None:
        raise not_found(f"Function not found: {function_arn(name)}")
    if qualifier not in (None, LATEST):
        raise not_found(f"Function not found: {function_arn(name)}:{qualifier}")
    return function


def _qualifier_in(name_or_arn: str) -> str | None:
    """The qualifier of a qualified name or ARN (``worker:$LATEST``), if any."""
    rest = name_or_arn.rpartition(":function:")[2] or name_or_arn
    _, sep, qualifier = rest.partition(":")
    return qualifier if sep else None


def page(request: web.Request, key: str, items: list[Any], *, max_items: int) -> web.Response:
    """One page of a List operation: ``Marker`` and ``MaxItems`` in, ``NextMarker`` out."""
    start = int(request.query.get("Marker") or 0)
    count = int(request.query.get("MaxItems") or max_items)
    answer: dict[str, Any] = {key: items[start : start + count]}
    if start + count < len(items):
        answer["NextMarker"] = str(start + count)
    return reply(answer)


def lambda_time(epoch: float) -> str:
    """A time as Lambda writes ``LastModified`` (``2024-01-31T12:00:00.000+0000``)."""
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


async def unsupported_operation(request: web.Request) -> web.Response:
    """The catch-all route: AWS's JSON error naming the operation botocore calls at this path."""
    operation = _operation_at(request.method, request.path)
    if operation is None:
        message = f"No Lambda operation is {request.method} {request.path}"
    else:
        message = f"{operation} is not supported by the local Lambda runtime (aiofanout)"
    return api_error(404, "UnknownOperationException", message)


def _operation_at(method: str, path: str) -> str | None:
    for verb, pattern, name in _operations():
        if verb == method and pattern.fullmatch(path):
            return name
    return None


@functools.cache
def _operations() -> list[tuple[str, re.Pattern[str], str]]:
    """(method, path pattern, name) of every Lambda operation in botocore's service model."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("lambda")
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        uri = http["requestUri"].partition("?")[0]
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(uri))
        routes.append((http["method"], re.compile(pattern), name))
    # A literal path (".../event-invoke-config/list") beats a template that also matches it.
    routes.sort(key=lambda route: route[1].pattern.count("[^/]+"))
    return routes
