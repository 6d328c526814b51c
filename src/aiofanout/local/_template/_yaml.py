"""Reading a template: JSON, or YAML with CloudFormation's short tags (``!Ref``, ``!GetAtt a.b``).

A short tag becomes the long form CloudFormation itself expands it to (``!Ref X`` is
``{"Ref": "X"}``, ``!GetAtt A.B`` is ``{"Fn::GetAtt": ["A", "B"]}``), so the rest of the package
sees one shape. The loader is PyYAML's safe loader with two changes: every ``!`` tag is an
intrinsic (an unknown one is refused naming it), and no scalar becomes a date, as CloudFormation
keeps ``AWSTemplateFormatVersion: 2010-09-09`` a string.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ..._errors import UsageError

#: The short tags and the functions they stand for (``!Condition`` is a condition reference).
SHORT_TAGS = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "And", "Base64", "Cidr", "Equals", "FindInMap", "GetAZs", "GetAtt", "If",
            "ImportValue", "Join", "Not", "Or", "Select", "Split", "Sub", "Transform",
        )
    },
}  # fmt: skip


class TemplateLoader(yaml.SafeLoader):
    """PyYAML's safe loader with CloudFormation's short tags, and no dates."""

    # Each loader class keeps its own table; copying it keeps SafeLoader's table untouched.
    yaml_implicit_resolvers = {  # noqa: RUF012 - PyYAML reads it as a class attribute
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def _intrinsic(loader: TemplateLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    function = SHORT_TAGS.get(suffix)
    if function is None:
        raise yaml.constructor.ConstructorError(
            None, None, f"unknown tag !{suffix}", node.start_mark
        )
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if function == "Fn::GetAtt":  # !GetAtt Resource.Attribute (the attribute may hold dots)
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {function: value}


TemplateLoader.add_multi_constructor("!", _intrinsic)


def read_template(path: Path) -> dict[str, Any]:
    """The template at ``path`` as plain data; :class:`UsageError` if it cannot be read."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read the template {path}: {exc}") from exc
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.load(text, Loader=TemplateLoader)  # TemplateLoader is a SafeLoader
    except (ValueError, yaml.YAMLError) as exc:
        raise UsageError(f"{path} is not a valid template: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise UsageError(f"{path}: a template needs a Resources section (a mapping)")
    return data
