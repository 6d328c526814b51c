"""What every resource translator shares: the resource as read, its kind, the deploy context.

A :class:`Kind` names the properties of one resource type the local stack honours (read and
acted on), the ones it reads past with a reason ("not enforced locally"), and how to create
it. Any other property is noted as not supported (refused with ``strict``). Only the honoured
properties are ever resolved, so an ignored one may hold what the local stack cannot resolve.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._errors import UsageError
from ._intrinsics import Created, Resolver, text

if TYPE_CHECKING:
    from .._stack import LocalAws
    from ._schedules import Scheduler


@dataclass(frozen=True, slots=True)
class Resource:
    """One resource of the template (after the SAM expansion), unresolved."""

    name: str  # the logical id
    type: str
    properties: Mapping[str, Any]
    depends_on: tuple[str, ...] = ()
    condition: str | None = None
    origin: str = ""  # where a SAM expansion made it from, for messages

    @property
    def where(self) -> str:
        """How messages name it: ``Resources.Name`` (and its SAM origin)."""
        return f"Resources.{self.name}" + (f" (SAM's, of {self.origin})" if self.origin else "")


@dataclass(frozen=True, slots=True)
class Note:
    """Something the local stack does not do as AWS would: one line, logged at ``level``."""

    where: str
    text: str
    level: int = logging.WARNING
    strict: bool = True  # refused with strict (a note of a not-enforced part is not)

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


@dataclass(frozen=True, slots=True)
class Kind:
    """A resource type the local stack creates."""

    type: str
    noun: str  # how the report names one: "queue", "function"
    create: Callable[[Context, Resource], Awaitable[Created]]
    honoured: frozenset[str]
    ignored: Mapping[str, str] = field(default_factory=dict)  # property: why
    needs: tuple[str, str] | None = None  # (property, why): without it, skipped as unsupported


@dataclass
class Context:
    """What creating resources needs: the stack, the resolver, clients opened once."""

    aws: LocalAws
    resolver: Resolver
    stack_name: str
    base: Path  # the template's directory: local code paths are relative to it
    scheduler: Scheduler
    kinds: Mapping[str, Kind]
    isolated: bool = True  # a directory's code too runs as AWS runs it (zips always do)
    exits: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    report: list[tuple[str, str, str]] = field(default_factory=list)  # (noun, name, what)
    _clients: dict[str, Any] = field(default_factory=dict)

    async def client(self, service: str) -> Any:
        """An aioboto3 client of the local stack, opened on first use, closed after deploy."""
        if service not in self._clients:
            self._clients[service] = await self.exits.enter_async_context(self.aws.client(service))
        return self._clients[service]

    def properties(self, resource: Resource) -> dict[str, Any]:
        """The honoured properties of ``resource``, resolved (the others are left alone)."""
        honoured = self.kinds[resource.type].honoured
        where = f"{resource.where}.Properties"
        return {
            key: value
            for key, value in (
                (key, self.resolver.resolve(value, f"{where}.{key}"))
                for key, value in resource.properties.items()
                if key in honoured
            )
            if value is not None
        }

    def physical_name(
        self, resource: Resource, *, limit: int, lower: bool = False, suffix: str = ""
    ) -> str:
        """A generated name, ``<stack>-<LogicalId>``, as CloudFormation makes one.

        No random tail: a local stack is made afresh each time, and its names should stay put.
        """
        name = f"{self.stack_name}-{resource.name}"
        if lower:
            name = re.sub(r"[^a-z0-9.-]", "-", name.lower())
        return name[: limit - len(suffix)] + suffix

    def created(self, noun: str, resource: Resource, what: str) -> None:
        """Record a line of the deploy report."""
        self.report.append((noun, resource.name, what))


# -- property values --------------------------------------------------------------------------


def integer(
    properties: Mapping[str, Any], key: str, where: str, bounds: tuple[int, int]
) -> int | None:
    """``properties[key]`` as an integer within ``bounds`` (``None`` if it is not there)."""
    if key not in properties:
        return None
    value = properties[key]
    try:
        number = int(text(value, f"{where}.{key}"))
    except ValueError:
        raise UsageError(f"{where}.{key}: expected an integer, got {value!r}") from None
    low, high = bounds
    if not low <= number <= high:
        raise UsageError(f"{where}.{key}: {number} is not within {low}-{high}")
    return number


def boolean(value: Any, where: str) -> bool:
    """A CloudFormation boolean: ``true``/``false``, also as strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise UsageError(f"{where}: expected true or false, got {value!r}")


def mapping(value: Any, where: str) -> dict[str, Any]:
    """A value that must be a mapping."""
    if not isinstance(value, dict):
        raise UsageError(f"{where}: expected a mapping, got {value!r}")
    return value


def name_of_arn(arn: str, service: str, where: str) -> str:
    """The name at the end of an ARN of ``service`` (``arn:aws:sqs:...:name``)."""
    if not arn.startswith(f"arn:aws:{service}:"):
        raise UsageError(f"{where}: expected an arn:aws:{service}:... ARN, got {arn!r}")
    return arn.rpartition(":")[2]
