"""CloudFormation's intrinsic functions over plain data: resolution, references, conditions.

:class:`Resolver` turns a property's value into what CloudFormation would hand the resource:
``Ref`` (a parameter, a pseudo parameter or a resource), ``Fn::GetAtt``, ``Fn::Sub`` (both
forms), ``Fn::Join``, ``Fn::Select``, ``Fn::Split``, ``Fn::FindInMap``, ``Fn::Base64``, ``Fn::If``
and the condition functions (``Fn::Equals``, ``Fn::Not``, ``Fn::And``, ``Fn::Or``, ``Condition``).
``Ref AWS::NoValue`` drops the key or the list item that holds it, as on AWS. Any other function
(``Fn::ImportValue``, ``Fn::GetAZs``, ...) is a :class:`UsageError` naming where it is, but only
when a value the local stack reads holds it: properties it ignores are never resolved.

:func:`references` finds the names a value refers to without resolving it: the dependency
graph's edges, so resources are created after what they refer to.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ..._errors import UsageError
from .._account import ACCOUNT, REGION


class _NoValue:
    """``Ref AWS::NoValue``: the key or item holding it is left out."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()
#: ``${Name}`` in an ``Fn::Sub`` string; ``${!Name}`` is the literal ``${Name}``.
SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
CONDITION_FUNCTIONS = ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition")


def pseudo_parameters(stack_name: str) -> dict[str, Any]:
    """The pseudo parameters (``AWS::Region`` ...) of a local stack named ``stack_name``."""
    return {
        "AWS::AccountId": ACCOUNT,
        "AWS::NoValue": NO_VALUE,
        "AWS::Partition": "aws",
        "AWS::Region": REGION,
        "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{stack_name}/local",
        "AWS::StackName": stack_name,
        "AWS::URLSuffix": "amazonaws.com",
    }


@dataclass(frozen=True, slots=True)
class Created:
    """What a resource became locally: its ``Ref`` and its ``Fn::GetAtt`` attributes.

    A resource the stack does not create (an IAM role, a type outside the subset) is a
    ``placeholder``: references to it still resolve, to stand-ins, as what holds them is ignored.
    """

    type: str
    ref: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    placeholder: bool = False

    def get_att(self, name: str, attribute: str, where: str) -> Any:
        """The attribute ``attribute`` of the resource ``name`` (for ``Fn::GetAtt``)."""
        if attribute in self.attributes:
            return self.attributes[attribute]
        if self.placeholder:
            return f"{name}.{attribute} (not created locally)"
        known = ", ".join(sorted(self.attributes)) or "none"
        raise UsageError(
            f"{where}: Fn::GetAtt {name}.{attribute}: a local {self.type} has no {attribute!r} "
            f"(it has {known})"
        )


class Resolver:
    """Resolves values against parameters, conditions, mappings and the resources created so far.

    Example::

        resolver = Resolver({"Stage": "dev", **pseudo_parameters("local")})
        resolver.resolve({"Fn::Sub": "${Stage}-${AWS::Region}"}, "Outputs.Name")  # dev-us-east-1
    """

    def __init__(
        self,
        values: Mapping[str, Any],
        conditions: Mapping[str, Any] | None = None,
        mappings: Mapping[str, Any] | None = None,
    ) -> None:
        self.values = dict(values)  # parameters and pseudo parameters, by name
        self.created: dict[str, Created] = {}
        self._conditions = dict(conditions or {})
        self._mappings = dict(mappings or {})
        self._evaluated: dict[str, bool] = {}
        self._evaluating: set[str] = set()

    def resolve(self, value: Any, where: str) -> Any:
        """``value`` with every intrinsic function in it replaced by what it gives."""
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, argument),) = value.items()
                function = FUNCTIONS.get(key)
                if function is not None:
                    return function(self, argument, f"{where}.{key}")
                if key.startswith("Fn::"):
                    raise UsageError(f"{where}: {key} is not supported locally")
            resolved = {k: self.resolve(v, f"{where}.{k}") for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not NO_VALUE}
        if isinstance(value, list):
            items = [self.resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return [item for item in items if item is not NO_VALUE]
        return value

    def condition(self, name: str, where: str) -> bool:
        """Whether the condition ``name`` of the ``Conditions`` section holds."""
        if name in self._evaluated:
            return self._evaluated[name]
        if name not in self._conditions:
            raise UsageError(f"{where}: no condition named {name!r} in Conditions")
        if name in self._evaluating:
            raise UsageError(f"Conditions.{name} refers to itself")
        self._evaluating.add(name)
        try:
            held = self.holds(self._conditions[name], f"Conditions.{name}")
        finally:
            self._evaluating.discard(name)
        self._evaluated[name] = held
        return held

    def holds(self, expression: Any, where: str) -> bool:
        """Whether a condition function (``Fn::Equals`` ...) or ``true``/``false`` holds."""
        resolved = self.resolve(expression, where)
        if isinstance(resolved, bool):
            return resolved
        if isinstance(resolved, str) and resolved.lower() in ("true", "false"):
            return resolved.lower() == "true"
        raise UsageError(
            f"{where}: a condition is Fn::Equals, Fn::Not, Fn::And, Fn::Or or Condition"
        )

    def lookup(self, name: str, where: str) -> Any:
        """What ``Ref name`` gives: a parameter, a pseudo parameter, or a created resource."""
        if name in self.values:
            return self.values[name]
        if name in self.created:
            return self.created[name].ref
        raise UsageError(f"{where}: {name!r} is not a parameter or a resource of the template")

    def attribute(self, name: str, attribute: str, where: str) -> Any:
        """What ``Fn::GetAtt name.attribute`` gives."""
        created = self.created.get(name)
        if created is None:
            raise UsageError(f"{where}: Fn::GetAtt names {name!r}, not a resource of the template")
        return created.get_att(name, attribute, where)

    def mapping(self, names: list[str], where: str) -> Any:
        """``Fn::FindInMap``'s value: ``Mappings[map][top][second]``."""
        value: Any = self._mappings
        for name in names:
            if not isinstance(value, dict) or name not in value:
                raise UsageError(f"{where}: Mappings has no {'.'.join(names)}")
            value = value[name]
        return value


# -- the functions ----------------------------------------------------------------------------


def text(value: Any, where: str) -> str:
    """A resolved value as the string CloudFormation makes of it (``true``, ``30``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise UsageError(f"{where}: expected a string, got {type(value).__name__} {value!r}")


def _arguments(argument: Any, count: int, where: str) -> list[Any]:
    if not isinstance(argument, list) or len(argument) != count:
        raise UsageError(f"{where}: takes a list of {count} arguments, got {argument!r}")
    return argument


def _ref(resolver: Resolver, argument: Any, where: str) -> Any:
    if not isinstance(argument, str):
        raise UsageError(f"{where}: Ref takes a name, got {argument!r}")
    return resolver.lookup(argument, where)


def _get_att(resolver: Resolver, argument: Any, where: str) -> Any:
    if isinstance(argument, str):
        argument = argument.split(".", 1)
    name, attribute = _arguments(argument, 2, where)
    attribute = text(resolver.resolve(attribute, where), where)  # Fn::GetAtt [X, !Ref Attr]
    return resolver.attribute(text(name, where), attribute, where)


def _sub(resolver: Resolver, argument: Any, where: str) -> str:
    template, variables = _sub_arguments(resolver, argument, where)

    def one(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            return text(variables[name], where)
        if "." in name:
            resource, attribute = name.split(".", 1)
            return text(resolver.attribute(resource, attribute, where), where)
        return text(resolver.lookup(name, where), where)

    return SUB_VARIABLE.sub(one, template)


def _sub_arguments(resolver: Resolver, argument: Any, where: str) -> tuple[str, dict[str, Any]]:
    """``Fn::Sub``'s string and its variables, resolved (none in the string form)."""
    if isinstance(argument, str):
        return argument, {}
    template, variables = _arguments(argument, 2, where)
    if not isinstance(template, str) or not isinstance(variables, dict):
        raise UsageError(f"{where}: Fn::Sub takes a string, or [string, {{variables}}]")
    return template, {k: resolver.resolve(v, f"{where}.{k}") for k, v in variables.items()}


def _join(resolver: Resolver, argument: Any, where: str) -> str:
    delimiter, items = _arguments(argument, 2, where)
    items = resolver.resolve(items, where)
    if not isinstance(items, list):
        raise UsageError(f"{where}: Fn::Join takes [delimiter, [values]]")
    return text(delimiter, where).join(text(item, where) for item in items)


def _select(resolver: Resolver, argument: Any, where: str) -> Any:
    index, items = (resolver.resolve(a, where) for a in _arguments(argument, 2, where))
    if not isinstance(items, list) or not text(index, where).isdigit():
        raise UsageError(f"{where}: Fn::Select takes [index, [values]]")
    if int(index) >= len(items):
        raise UsageError(f"{where}: Fn::Select index {index} is past the {len(items)} values")
    return items[int(index)]


def _split(resolver: Resolver, argument: Any, where: str) -> list[str]:
    delimiter, source = (
        text(resolver.resolve(a, where), where) for a in _arguments(argument, 2, where)
    )
    return source.split(delimiter)


def _find_in_map(resolver: Resolver, argument: Any, where: str) -> Any:
    names = [text(resolver.resolve(a, where), where) for a in _arguments(argument, 3, where)]
    return resolver.mapping(names, where)


def _base64(resolver: Resolver, argument: Any, where: str) -> str:
    return base64.b64encode(text(resolver.resolve(argument, where), where).encode()).decode()


def _if(resolver: Resolver, argument: Any, where: str) -> Any:
    name, when_true, when_false = _arguments(argument, 3, where)
    chosen = when_true if resolver.condition(text(name, where), where) else when_false
    return resolver.resolve(chosen, where)


def _equals(resolver: Resolver, argument: Any, where: str) -> bool:
    first, second = (resolver.resolve(a, where) for a in _arguments(argument, 2, where))
    return bool(first == second or _loose(first) == _loose(second))


def _loose(value: Any) -> Any:
    """CloudFormation compares a parameter's string with a literal number or boolean."""
    return text(value, "") if isinstance(value, str | int | float | bool) else value


def _not(resolver: Resolver, argument: Any, where: str) -> bool:
    return not resolver.holds(_arguments(argument, 1, where)[0], where)


def _and(resolver: Resolver, argument: Any, where: str) -> bool:
    return all(resolver.holds(c, where) for c in _conditions(argument, where))


def _or(resolver: Resolver, argument: Any, where: str) -> bool:
    return any(resolver.holds(c, where) for c in _conditions(argument, where))


def _conditions(argument: Any, where: str) -> list[Any]:
    if not isinstance(argument, list) or not 2 <= len(argument) <= 10:
        raise UsageError(f"{where}: takes a list of 2 to 10 conditions")
    return argument


def _condition(resolver: Resolver, argument: Any, where: str) -> bool:
    return resolver.condition(text(argument, where), where)


FUNCTIONS: dict[str, Callable[[Resolver, Any, str], Any]] = {
    "Condition": _condition,
    "Fn::And": _and,
    "Fn::Base64": _base64,
    "Fn::Equals": _equals,
    "Fn::FindInMap": _find_in_map,
    "Fn::GetAtt": _get_att,
    "Fn::If": _if,
    "Fn::Join": _join,
    "Fn::Not": _not,
    "Fn::Or": _or,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::Sub": _sub,
    "Ref": _ref,
}


# -- references -------------------------------------------------------------------------------


def references(value: Any) -> set[str]:
    """The names ``value`` refers to (``Ref``, ``Fn::GetAtt``, ``Fn::Sub``), unresolved."""
    return set(_references(value))


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _references(item)
    if not isinstance(value, dict):
        return
    if len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref" and isinstance(argument, str):
            yield argument
            return
        if key == "Fn::GetAtt":
            names = argument.split(".", 1) if isinstance(argument, str) else argument
            if isinstance(names, list) and names and isinstance(names[0], str):
                yield names[0]
            return
        if key == "Fn::Sub":
            yield from _sub_references(argument)
            return
    for item in value.values():
        yield from _references(item)


def _sub_references(argument: Any) -> Iterator[str]:
    template, variables = argument, {}
    if isinstance(argument, list) and len(argument) == 2:
        template, variables = argument
        yield from _references(variables)
    if not isinstance(template, str) or not isinstance(variables, dict):
        return
    for match in SUB_VARIABLE.finditer(template):
        name = match.group(1).strip()
        if not name.startswith("!") and name not in variables:
            yield name.split(".", 1)[0]
