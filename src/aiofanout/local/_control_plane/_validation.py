"""AWS's request validation, driven by botocore's service model for ``lambda`` 2015-03-31.

Before an operation looks anything up, AWS checks its input against the constraints the model
carries for every member: ``required``, ``min`` and ``max`` (a string's or a list's length, a
number's value), ``pattern`` (the whole value must match) and ``enum``. What fails is answered
400 ``ValidationException``, every failure in one message, in AWS's words::

    1 validation error detected: Value 'x y' at 'functionName' failed to satisfy constraint:
    Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?...

A member is named by its path in lower camel case (``destinationConfig.onFailure.destination``);
a value is shown as AWS's Java service shows it (``'x'``, ``'[a, b]'``, ``'{k=v}'``, ``null``),
except a member the model marks ``sensitive`` (environment variables), shown as nothing;
a list's or a map's members fail as a whole, the message listing every constraint of the member
(``Member must satisfy constraint: [...]``). One difference: an enum's values are listed in the
model's order, where AWS lists them in the order of its own set.

``Runtime`` is left out: AWS checks it itself, answering ``InvalidParameterValueException``
(see ``_functions_api``).
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ._http import ApiError, Handler, body_of

if TYPE_CHECKING:
    from botocore.model import OperationModel, Shape, StructureShape

#: Members AWS checks itself, with an error of its own, rather than as a ValidationException.
CHECKED_BY_THE_OPERATION = frozenset({"Runtime"})


@dataclass(frozen=True, slots=True)
class Failure:
    """One member that fails its constraints: where, its value as shown, what it must satisfy."""

    path: str
    shown: str
    constraint: str

    def sentence(self) -> str:
        """AWS's words for it (a sensitive value, as environment variables, is not shown)."""
        where = f"Value {self.shown} at '{self.path}'" if self.shown else f"Value at '{self.path}'"
        return f"{where} failed to satisfy constraint: {self.constraint}"


def validate(operation: str, params: Mapping[str, Any]) -> None:
    """Raise 400 ``ValidationException`` if ``params`` break the model's input constraints.

    ``params`` are the operation's input members by their model names (``FunctionName``,
    ``MaxItems``, ...), however they travelled (path, query string, header or body).

    Example::

        validate("GetFunction", {"FunctionName": "bad name"})  # raises ApiError (400)
    """
    shape = _operation(operation).input_shape
    if shape is None:
        return
    failures = list(_structure_failures(shape, params, ""))
    if failures:
        count = len(failures)
        noun = "validation error" if count == 1 else "validation errors"
        sentences = "; ".join(failure.sentence() for failure in failures)
        raise ApiError(400, "ValidationException", f"{count} {noun} detected: {sentences}")


def validated(operation: str, handler: Handler) -> Handler:
    """``handler``, its request checked first against ``operation``'s input constraints."""

    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        validate(operation, await request_params(operation, request))
        return await handler(request)

    return checked


async def request_params(operation: str, request: web.Request) -> dict[str, Any]:
    """The operation's input members in ``request``, by their model names.

    Wherever they are: path, query string, headers, JSON body; a number in the query string
    as a number.
    """
    shape = _operation(operation).input_shape
    if shape is None:
        return {}
    payload = shape.serialization.get("payload")
    in_path = _path_values(operation, request.rel_url.raw_path)
    body: dict[str, Any] | None = None
    params: dict[str, Any] = {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if location == "uri":
            params[name] = in_path.get(wire_name)
        elif location == "querystring":
            params[name] = _query_value(request.query.get(wire_name), member.type_name)
        elif location == "header":
            params[name] = request.headers.get(wire_name)
        elif name != payload:
            body = await body_of(request) if body is None else body
            params[name] = body.get(wire_name)
    return params


def _path_values(operation: str, path: str) -> dict[str, str]:
    match = _path_pattern(operation).fullmatch(path)
    return {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()} if match else {}


@functools.cache
def _path_pattern(operation: str) -> re.Pattern[str]:
    """The operation's ``requestUri`` as a pattern with a named group per path member."""
    uri = _operation(operation).http["requestUri"].partition("?")[0]
    parts = re.split(r"\{([^}+]+)\+?\}", uri)
    pattern = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
    )
    return re.compile(pattern)


def _query_value(value: str | None, kind: str) -> Any:
    if value is not None and kind == "integer" and re.fullmatch("-?[0-9]{1,18}", value):
        return int(value)
    return value


@functools.cache
def _operation(name: str) -> OperationModel:
    from botocore.session import get_session

    return get_session().get_service_model("lambda").operation_model(name)


def _structure_failures(
    shape: StructureShape, value: Mapping[str, Any], prefix: str
) -> list[Failure]:
    failures = []
    for name, member in shape.members.items():
        if not prefix and name in CHECKED_BY_THE_OPERATION:
            continue
        path = f"{prefix}{name[0].lower()}{name[1:]}"
        if value.get(name) is None:
            if name in shape.required_members:
                failures.append(Failure(path, "null", "Member must not be null"))
            continue
        failures += _member_failures(member, value[name], path)
    return failures


def _member_failures(shape: Shape, value: Any, path: str) -> list[Failure]:
    """What fails in ``value``, a member of type ``shape`` at ``path``."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, Mapping):
        return _structure_failures(shape, value, f"{path}.")
    if kind == "list" and isinstance(value, list):
        return _collection_failures(shape, value, path)
    if kind == "map" and isinstance(value, Mapping):
        return _map_failures(shape, value, path)
    if not _of_type(kind, value):
        return []  # a value of another type: the operation's own checks answer it
    return [Failure(path, _shown(shape, value), c) for c in _broken(shape, value)]


def _of_type(kind: str, value: Any) -> bool:
    """Whether ``value`` is of the model's scalar type ``kind`` (what its constraints are for)."""
    if kind == "string":
        return isinstance(value, str)
    if kind in ("integer", "long"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("float", "double"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return False


def _collection_failures(shape: Any, value: list[Any], path: str) -> list[Failure]:
    failures = [Failure(path, _shown(shape, value), c) for c in _broken(shape, value)]
    member = shape.member
    if any(_broken(member, item) or item is None for item in value):
        every = ", ".join([*_constraints(member), "Member must not be null"])
        constraint = f"Member must satisfy constraint: [{every}]"
        failures.append(Failure(path, _shown(shape, value), constraint))
    return failures


def _map_failures(shape: Any, value: Mapping[Any, Any], path: str) -> list[Failure]:
    failures = [Failure(path, _shown(shape, value), c) for c in _broken(shape, value)]
    for part, items in (("keys", value.keys()), ("value", value.values())):
        member = shape.key if part == "keys" else shape.value
        if any(_broken(member, item) for item in items):
            every = ", ".join(_constraints(member))
            label = "Map keys" if part == "keys" else "Map value"
            failures.append(
                Failure(path, _shown(shape, value), f"{label} must satisfy constraint: [{every}]")
            )
    return failures


def _broken(shape: Shape, value: Any) -> list[str]:
    """The constraints of ``shape`` that ``value`` (a scalar, list or map) breaks."""
    metadata, broken = shape.metadata, []
    measure = _measure(value)
    noun = "value" if isinstance(value, (int, float)) and not isinstance(value, bool) else "length"
    if measure is not None and "max" in metadata and measure > metadata["max"]:
        broken.append(f"Member must have {noun} less than or equal to {metadata['max']}")
    if measure is not None and "min" in metadata and measure < metadata["min"]:
        broken.append(f"Member must have {noun} greater than or equal to {metadata['min']}")
    pattern = metadata.get("pattern")
    if isinstance(value, str) and pattern is not None and not _matches(pattern, value):
        broken.append(f"Member must satisfy regular expression pattern: {pattern}")
    enum = metadata.get("enum")
    if isinstance(value, str) and enum and value not in enum:
        broken.append(f"Member must satisfy enum value set: [{', '.join(enum)}]")
    return broken


def _constraints(shape: Shape) -> list[str]:
    """Every constraint of ``shape``, as a list member's message lists them."""
    metadata, noun = shape.metadata, "value" if shape.type_name in _NUMBERS else "length"
    words = []
    if "max" in metadata:
        words.append(f"Member must have {noun} less than or equal to {metadata['max']}")
    if "min" in metadata:
        words.append(f"Member must have {noun} greater than or equal to {metadata['min']}")
    if "pattern" in metadata:
        words.append(f"Member must satisfy regular expression pattern: {metadata['pattern']}")
    if metadata.get("enum"):
        words.append(f"Member must satisfy enum value set: [{', '.join(metadata['enum'])}]")
    return words


_NUMBERS = frozenset({"integer", "long", "float", "double"})


def _measure(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, (str, list, dict)):
        return len(value)
    return None


def _matches(pattern: str, value: str) -> bool:
    compiled = _compiled(pattern)
    return compiled is None or compiled.fullmatch(value) is not None  # Java's matches()


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:  # a Java-only construct: AWS's check stays unmatched here, not refused
        return None


def _shown(shape: Shape, value: Any) -> str:
    return "" if shape.metadata.get("sensitive") else shown(value)


def shown(value: Any) -> str:
    """``value`` as AWS's Java service shows it in a message (``'x'``, ``'[a, b]'``)."""
    return f"'{_java(value)}'"


def _java(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_java(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_java(k)}={_java(v)}" for k, v in value.items()) + "}"
    text = str(value)
    text = text if len(text) <= 1000 else text[:1000] + "..."
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
