"""What every route of the local Lambda API shares: AWS's JSON errors, bodies, the function lookup.

An operation raises :class:`ApiError` and :func:`aws_errors` (a middleware) answers it in AWS's
error shape: the status code, ``x-amzn-ErrorType`` naming the exception botocore raises, and a
JSON body with ``Type`` and ``message`` (``Message`` for ``ResourceNotFoundException``, as the
service model spells that member). A path no route serves is answered the same way, naming the
operation botocore would call there (:func:`unsupported_operation`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web

from ..._errors import UsageError
from .._account import function_arn
from .._functions import Function, FunctionRegistry

JSON = "application/json"
LATEST = "$LATEST"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: A function's name as ``CreateFunction`` takes it (AWS: 1-64 letters, digits, ``-``, ``_``).
NAME_PATTERN = "[a-zA-Z0-9-_]{1,64}"
#: What names a function to operate on: its name or ARN, a qualifier (AWS's pattern).
ADDRESS_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?"
    r"([a-zA-Z0-9-_\.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
)
_ADDRESS = re.compile(ADDRESS_PATTERN)
_MARKER = re.compile("[0-9]{1,9}")


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


@contextlib.contextmanager
def usage_errors_as_invalid() -> Iterator[None]:
    """A config the runtime refuses (a :class:`UsageError`) is a 400 ``InvalidParameterValue``."""
    try:
        yield
    except UsageError as exc:
        raise invalid(str(exc)) from exc


def validation(
    field: str, value: object, constraint: str, *, code: str = "ValidationException"
) -> ApiError:
    """400 ``ValidationException`` in AWS's words, the value shown escaped and shortened."""
    return ApiError(
        400,
        code,
        f"1 validation error detected: Value '{shown(value)}' at '{field}' failed to satisfy "
        f"constraint: {constraint}",
    )


def shown(value: object, limit: int = 100) -> str:
    """``value`` fit for a message or a log line: control characters escaped, at most ``limit``."""
    text = str(value)
    text = text if len(text) <= limit else text[:limit] + "..."
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


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


#: Seconds a request's body may take to arrive: a client that stops half way through gets a
#: 408 and its connection closed, rather than holding a handler forever.
BODY_TIMEOUT = 30.0


@contextlib.asynccontextmanager
async def body_deadline() -> AsyncIterator[None]:
    """Bound the reading of a request's body by :data:`BODY_TIMEOUT` (408 past it)."""
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            yield
    except TimeoutError as exc:
        raise ApiError(
            408, "RequestTimeoutException", f"the request body did not arrive in {BODY_TIMEOUT} s"
        ) from exc


async def body_of(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (400 ``InvalidRequestContentException`` if it is not one).

    Parsed once per request (the validation and the operation both read it: a 50 MB zip).
    """
    parsed = request.get(_PARSED)
    if parsed is not None:
        return dict(parsed)
    try:
        async with body_deadline():
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise too_large(request.client_max_size) from exc
    try:
        body = json.loads(raw) if raw else {}
    except (ValueError, RecursionError) as exc:
        raise unparsable(exc) from exc
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidRequestContentException", "The request body must be an object")
    request[_PARSED] = body
    return dict(body)


_PARSED: web.RequestKey[dict[str, Any]] = web.RequestKey("aiofanout_parsed_body", dict)


def too_large(limit: int, operation: str = "") -> ApiError:
    """413 ``RequestEntityTooLargeException``, as AWS answers a request over its limit."""
    suffix = f" for the {operation} operation" if operation else ""
    return ApiError(
        413, "RequestEntityTooLargeException", f"Request must be smaller than {limit} bytes{suffix}"
    )


def unparsable(exc: Exception) -> ApiError:
    """400 ``InvalidRequestContentException`` for JSON that does not parse (or nests too deep)."""
    reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
    return ApiError(
        400, "InvalidRequestContentException", f"Could not parse request body into json: {reason}"
    )


def check_name(value: object) -> str:
    """The name ``CreateFunction`` is given (its ARN in this account also names it), or 400.

    The model allows 140 characters (an ARN); a name over 64 is refused as AWS refuses it, with
    a validation message under ``InvalidParameterValueException``.
    """
    name = value.removeprefix(function_arn("")) if isinstance(value, str) else ""
    if re.fullmatch("[a-zA-Z0-9-_]{65,140}", name):
        constraint = "Member must have length less than or equal to 64"
        raise validation("functionName", value, constraint, code="InvalidParameterValueException")
    if not re.fullmatch(NAME_PATTERN, name):
        raise _bad_name(value, NAME_PATTERN, 140)
    return name


def _bad_name(value: object, pattern: str, longest: int) -> ApiError:
    if len(str(value)) > longest:
        constraint = f"Member must have length less than or equal to {longest}"
    else:
        constraint = f"Member must satisfy regular expression pattern: {pattern}"
    return validation("functionName", value, constraint)


def function_not_found(name: str, qualifier: str | None = None) -> ApiError:
    """404 ``Function not found: <ARN>`` (with ``:<qualifier>`` when one is named)."""
    suffix = f":{qualifier}" if qualifier else ""
    return not_found(f"Function not found: {function_arn(name)}{suffix}")


def address_of(request: web.Request) -> tuple[str, str | None]:
    """The function's name and qualifier a ``{name}`` path and ``?Qualifier=`` name.

    A qualifier in the name (``fn:live``) and a different ``Qualifier`` are 400, as on AWS.
    """
    name, in_name = address(request.match_info["name"])
    given = request.query.get("Qualifier") or None
    if in_name is not None and given is not None and in_name != given:
        raise invalid(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    return name, in_name or given


def lookup(
    functions: FunctionRegistry,
    request: web.Request,
    *,
    missing: Callable[[str, str | None], ApiError] = function_not_found,
) -> Function:
    """The function a ``{name}`` path names, at the ``Qualifier`` (only ``$LATEST`` here).

    A missing function is ``missing(name, qualifier)`` (404 ``Function not found`` naming the
    ARN unless an operation words it otherwise); an unknown qualifier 404 naming the
    qualified ARN, as on AWS.
    """
    name, qualifier = address_of(request)
    function = functions.find(name)
    if function is None:
        raise missing(name, qualifier)
    if qualifier not in (None, LATEST):
        raise function_not_found(name, qualifier)
    return function


def address(name_or_arn: str) -> tuple[str, str | None]:
    """The name and qualifier (if any) of a function's name or ARN; 400 if it is neither."""
    match = _ADDRESS.fullmatch(name_or_arn) if len(name_or_arn) <= 170 else None
    if match is None or len(match.group(7)) > 64:
        raise _bad_name(name_or_arn, ADDRESS_PATTERN, 170)
    return match.group(7), match.group(9)


def page(request: web.Request, key: str, items: list[Any], *, max_items: int) -> web.Response:
    """One page of a List operation: ``Marker`` and ``MaxItems`` in, ``NextMarker`` out."""
    marker = request.query.get("Marker") or "0"
    if not _MARKER.fullmatch(marker):
        raise invalid(f"Invalid Marker: {shown(marker)}")
    start = int(marker)
    count = _max_items(request.query.get("MaxItems"), max_items)
    answer: dict[str, Any] = {key: items[start : start + count]}
    if start + count < len(items):
        answer["NextMarker"] = str(start + count)
    return reply(answer)


def _max_items(value: str | None, default: int) -> int:
    """``MaxItems``: 1..10000 (AWS's ``MaxListItems``)."""
    if value is None:
        return default
    if not _MARKER.fullmatch(value):
        raise validation("maxItems", value, "Member must be an integer")
    count = int(value)
    if not 1 <= count <= 10_000:
        limit = "greater than or equal to 1" if count < 1 else "less than or equal to 10000"
        raise validation("maxItems", value, f"Member must have value {limit}")
    return count


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
