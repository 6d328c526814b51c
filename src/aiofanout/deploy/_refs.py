"""References in a function's environment to the stack's own resources: ``${queue.work.url}``.

A value that is exactly a reference becomes, in the template, the intrinsic that names the
resource (``{"Ref": "WorkQueue"}``), and on the local stack the resource's local value (the
moto server's queue URL), so the code reads one variable in both places and never hard-codes
a name that differs between them (a bucket CloudFormation names, a URL with a local port).
"""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import UsageError

__all__ = ["ATTRIBUTES", "Reference", "parse_reference"]

#: What each kind of resource offers, and whether the kind names a resource (``queue.NAME``).
ATTRIBUTES: dict[str, tuple[bool, frozenset[str]]] = {
    "queue": (True, frozenset({"url", "arn", "name"})),
    "function": (True, frozenset({"name", "arn"})),
    "topic": (True, frozenset({"arn", "name"})),
    "claim_check": (False, frozenset({"bucket", "prefix"})),
    "journal": (False, frozenset({"bucket", "prefix"})),
    "idempotency": (False, frozenset({"table"})),
}


@dataclass(frozen=True, slots=True)
class Reference:
    """``${kind.name.attribute}`` (``name`` is empty for the stack's single resources)."""

    kind: str
    name: str
    attribute: str

    def __str__(self) -> str:
        middle = f".{self.name}" if self.name else ""
        return f"${{{self.kind}{middle}.{self.attribute}}}"


def parse_reference(value: str) -> Reference | None:
    """The reference ``value`` is, ``None`` for a plain value; :class:`UsageError` if malformed.

    >>> parse_reference("${queue.work.url}")
    Reference(kind='queue', name='work', attribute='url')
    """
    if not (value.startswith("${") and value.endswith("}")):
        if "${" in value:
            raise UsageError(f"{value!r}: a reference is a whole value, like '${{queue.work.url}}'")
        return None
    inner = value[2:-1]
    kind, _, rest = inner.partition(".")
    name, _, attribute = rest.rpartition(".")
    known = ATTRIBUTES.get(kind)
    if known is None or bool(name) != known[0] or attribute not in known[1]:
        raise UsageError(f"{value!r}: {_forms()}")
    return Reference(kind, name, attribute)


def _forms() -> str:
    forms = [
        f"${{{kind}{'.NAME' if named else ''}.{attr}}}"
        for kind, (named, attributes) in ATTRIBUTES.items()
        for attr in sorted(attributes)
    ]
    return "a reference is one of " + ", ".join(forms)
