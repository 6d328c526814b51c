"""A template read and checked before anything starts: parameters, conditions, resources, order.

Everything that can be known without creating a resource is checked here, so a bad template
fails before a server starts: the sections, each parameter's value (its ``Default``, or an
override; ``AllowedValues``, ``AllowedPattern``, ``Number``), the conditions, the SAM
expansion, each resource's type and properties against the local subset, every reference
(``Ref``, ``Fn::GetAtt``, ``Fn::Sub``, ``DependsOn``) naming something the template has, and
the creation order: each resource after what it refers to, as CloudFormation orders them; a
cycle is refused naming it.

A resource type outside the subset becomes a placeholder (references to it resolve to
stand-ins) with a note; IAM and permission types are accepted as not enforced locally. With
``strict``, every note of something the local stack would do otherwise than AWS is an error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..._errors import UsageError
from . import _sam
from ._intrinsics import Resolver, pseudo_parameters, references, text
from ._kinds import Kind, Note, Resource
from ._yaml import read_template

SECTIONS = frozenset(
    {
        "AWSTemplateFormatVersion",
        "Conditions",
        "Description",
        "Globals",
        "Mappings",
        "Metadata",
        "Outputs",
        "Parameters",
        "Resources",
        "Rules",
        "Transform",
    }
)
SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
IAM = "not enforced locally"
#: Types accepted and not enforced locally: what they guard is open on a laptop anyway.
NOT_ENFORCED = {
    "AWS::IAM::Role": IAM,
    "AWS::IAM::Policy": IAM,
    "AWS::IAM::ManagedPolicy": IAM,
    "AWS::Lambda::Permission": IAM,
    "AWS::SQS::QueuePolicy": IAM,
    "AWS::S3::BucketPolicy": IAM,
    "AWS::Logs::LogGroup": "not created locally: logs go to serve's output",
}


@dataclass(frozen=True, slots=True)
class Document:
    """A checked template: what to create, in which order, and what it resolves against."""

    path: Path
    stack_name: str
    values: Mapping[str, Any]  # parameters and pseudo parameters
    conditions: Mapping[str, Any]
    mappings: Mapping[str, Any]
    resources: Mapping[str, Resource]  # in creation order
    placeholders: frozenset[str]  # not created locally
    outputs: Mapping[str, Any]
    notes: tuple[Note, ...]

    def resolver(self) -> Resolver:
        """A fresh resolver over the parameters, conditions and mappings."""
        return Resolver(self.values, self.conditions, self.mappings)


def read_document(
    path: Path,
    *,
    parameters: Mapping[str, str],
    strict: bool,
    stack_name: str,
    kinds: Mapping[str, Kind],
) -> Document:
    """Read the template at ``path`` and check it (:class:`UsageError` says what is wrong)."""
    data = read_template(path)
    unknown = sorted(set(data) - SECTIONS)
    if unknown:
        raise UsageError(f"{path}: unknown sections {unknown}")
    values = {**parameter_values(data.get("Parameters"), parameters)}
    values |= pseudo_parameters(stack_name)
    conditions = _mapping(data.get("Conditions"), "Conditions")
    mappings = _mapping(data.get("Mappings"), "Mappings")
    notes: list[Note] = []
    _check_transform(data, notes)
    resolver = Resolver(values, conditions, mappings)
    bodies = _sam.expand(data["Resources"], data.get("Globals"), notes)
    resources, excluded = _resources(bodies, resolver)
    placeholders = frozenset(_classify(resources, kinds, notes))
    outputs = _mapping(data.get("Outputs"), "Outputs")
    known = set(resources) | excluded | set(values)
    order = creation_order(resources, known, outputs)
    if strict:
        _refuse(notes)
    return Document(
        path,
        stack_name,
        values,
        conditions,
        mappings,
        {name: resources[name] for name in order},
        placeholders,
        outputs,
        tuple(notes),
    )


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{where}: expected a mapping")
    return value


def _check_transform(data: dict[str, Any], notes: list[Note]) -> None:
    transform = data.get("Transform") or []
    transforms = [transform] if isinstance(transform, str) else list(transform)
    for other in transforms:
        if other != SAM_TRANSFORM:
            notes.append(Note("Transform", f"{other} is not supported locally, ignored"))
    uses_sam = any(
        isinstance(body, dict) and str(body.get("Type", "")).startswith("AWS::Serverless::")
        for body in data["Resources"].values()
    )
    if uses_sam and SAM_TRANSFORM not in transforms:
        notes.append(
            Note("Transform", f"AWS::Serverless::* needs Transform: {SAM_TRANSFORM} on AWS")
        )


# -- parameters -------------------------------------------------------------------------------


def parameter_values(declared: Any, overrides: Mapping[str, str]) -> dict[str, Any]:
    """Each parameter's value: its override, else its ``Default``; checked as AWS checks it."""
    declared = _mapping(declared, "Parameters")
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        have = ", ".join(declared) or "none"
        raise UsageError(f"--parameter {unknown[0]}: the template has no such parameter ({have})")
    return {name: _parameter(name, spec, overrides.get(name)) for name, spec in declared.items()}


def _parameter(name: str, spec: Any, override: str | None) -> Any:
    where = f"Parameters.{name}"
    spec = _mapping(spec, where)
    value = override if override is not None else spec.get("Default")
    if value is None:
        raise UsageError(f"{where} has no Default: pass --parameter {name}=VALUE")
    value = text(value, where)
    allowed = [text(a, where) for a in spec.get("AllowedValues") or []]
    if allowed and value not in allowed:
        raise UsageError(f"{where}: {value!r} is not one of {allowed}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(str(pattern), value) is None:
        raise UsageError(f"{where}: {value!r} does not match AllowedPattern {pattern!r}")
    kind = str(spec.get("Type", "String"))
    if kind == "Number":
        _number(value, spec, where)
    if kind == "CommaDelimitedList" or kind.startswith("List<"):
        return [item.strip() for item in value.split(",")]
    return value


def _number(value: str, spec: dict[str, Any], where: str) -> None:
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"{where}: {value!r} is not a Number") from None
    low, high = spec.get("MinValue"), spec.get("MaxValue")
    if (low is not None and number < float(low)) or (high is not None and number > float(high)):
        raise UsageError(f"{where}: {value} is not within MinValue-MaxValue ({low}-{high})")


# -- resources --------------------------------------------------------------------------------


def _resources(
    bodies: Mapping[str, Any], resolver: Resolver
) -> tuple[dict[str, Resource], set[str]]:
    """The resources whose condition holds, and the names of those whose condition does not."""
    resources, excluded = {}, set()
    for name, body in bodies.items():
        where = f"Resources.{name}"
        if not isinstance(body, dict) or not isinstance(body.get("Type"), str):
            raise UsageError(f"{where}: a resource is a mapping with a Type")
        condition = body.get("Condition")
        if condition is not None and not resolver.condition(text(condition, where), where):
            excluded.add(name)
            continue
        depends = body.get("DependsOn") or []
        origin = (body.get("Metadata") or {}).get("SamResourceId")
        resources[name] = Resource(
            name,
            body["Type"],
            _mapping(body.get("Properties"), f"{where}.Properties"),
            tuple([depends] if isinstance(depends, str) else depends),
            condition,
            origin=origin if origin not in (None, name) else "",
        )
    return resources, excluded


def _classify(
    resources: Mapping[str, Resource], kinds: Mapping[str, Kind], notes: list[Note]
) -> list[str]:
    """Note what the local stack does not do; return the names it does not create."""
    placeholders = []
    for name, resource in resources.items():
        kind = kinds.get(resource.type)
        if resource.type in NOT_ENFORCED:
            reason, level, strict = NOT_ENFORCED[resource.type], logging.INFO, False
        elif kind is None:
            reason, level, strict = "not supported locally, skipped", logging.WARNING, True
        elif kind.needs is not None and kind.needs[0] not in resource.properties:
            reason, level, strict = f"{kind.needs[1]}, skipped", logging.WARNING, True
        else:
            _check_properties(resource, kind, notes)
            continue
        notes.append(Note(f"{resource.where} ({resource.type})", reason, level, strict))
        placeholders.append(name)
    return placeholders


def _check_properties(resource: Resource, kind: Kind, notes: list[Note]) -> None:
    for key in resource.properties:
        where = f"{resource.where}.Properties.{key}"
        if key in kind.ignored:
            notes.append(Note(where, kind.ignored[key], logging.INFO, strict=False))
        elif key not in kind.honoured:
            notes.append(Note(where, "not supported locally, ignored"))


def _refuse(notes: list[Note]) -> None:
    refused = [str(note) for note in notes if note.strict]
    if refused:
        lines = "\n  ".join(refused)
        raise UsageError(
            f"--strict refuses what the local stack would not do as AWS does:\n  {lines}"
        )


# -- the order --------------------------------------------------------------------------------


def creation_order(
    resources: Mapping[str, Resource], known: set[str], outputs: Mapping[str, Any]
) -> list[str]:
    """Each resource after those it refers to, else in template order; a cycle is refused."""
    edges = {
        name: _dependencies(resource, resources, known) for name, resource in resources.items()
    }
    for name, output in outputs.items():
        if not isinstance(output, dict) or "Value" not in output:
            raise UsageError(f"Outputs.{name}: an output is a mapping with a Value")
        _check_references(references(output), known, f"Outputs.{name}")
    order: list[str] = []
    path: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        if name in path:
            cycle = " -> ".join([*path[path.index(name) :], name])
            raise UsageError(
                f"a reference cycle: {cycle}; CloudFormation refuses it too (break one "
                "reference, e.g. with a name built by Fn::Sub instead of a Ref)"
            )
        path.append(name)
        for dependency in edges[name]:
            visit(dependency)
        path.pop()
        done.add(name)
        order.append(name)

    for name in resources:
        visit(name)
    return order


def _dependencies(
    resource: Resource, resources: Mapping[str, Resource], known: set[str]
) -> list[str]:
    names = references(dict(resource.properties)) | set(resource.depends_on)
    _check_references(names, known, resource.where)
    return sorted(name for name in names if name in resources)


def _check_references(names: set[str], known: set[str], where: str) -> None:
    for name in sorted(names):
        if name not in known and not name.startswith("AWS::"):
            raise UsageError(
                f"{where}: refers to {name!r}, which is not a resource or a parameter of the "
                "template"
            )
