"""CloudFormation's intrinsics in their long form, and the logical ids of a stack's parts.

The long form (``{"Ref": ...}``, ``{"Fn::GetAtt": [...]}``) is plain YAML and plain JSON: no
custom tags (``!Ref``) for a YAML writer to get wrong, and a template any tool reads.
"""

from __future__ import annotations

import re
from typing import Any

from .._errors import UsageError

__all__ = ["arn", "get_att", "logical_id", "ref", "sub"]

_PART = re.compile(r"[A-Za-z0-9]+")


def ref(logical: str) -> dict[str, Any]:
    """``{"Ref": logical}``."""
    return {"Ref": logical}


def get_att(logical: str, attribute: str) -> dict[str, Any]:
    """``{"Fn::GetAtt": [logical, attribute]}``."""
    return {"Fn::GetAtt": [logical, attribute]}


def sub(text: str) -> dict[str, Any]:
    """``{"Fn::Sub": text}``."""
    return {"Fn::Sub": text}


def arn(service: str, resource: str) -> dict[str, Any]:
    """The ARN of ``resource`` of ``service`` in the stack's partition, region and account.

    Built from the name, not from the resource (``GetAtt``), so a role that names a function
    does not depend on it: two functions that invoke each other make no circular dependency.
    """
    return sub(f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}")


def logical_id(name: str, kind: str, taken: dict[str, str]) -> str:
    """``work-dlq`` + ``Queue`` -> ``WorkDlqQueue``; ``taken`` maps ids to the names they came from.

    Logical ids are alphanumeric, so ``a-b`` and ``a_b`` would meet: that is refused.
    """
    logical = "".join(part[0].upper() + part[1:] for part in _PART.findall(name)) + kind
    if logical[0].isdigit():
        logical = "R" + logical
    previous = taken.setdefault(logical, name)
    if previous != name:
        raise UsageError(
            f"{previous!r} and {name!r} make the same CloudFormation id {logical!r}: "
            "rename one (ids keep only letters and digits)"
        )
    return logical
