"""Message attributes of SNS and SQS messages, checked before sending.

A topic with several subscribers (SQS queues, Lambda functions) routes each message by its
attributes: a subscription's ``FilterPolicy`` (scope ``MessageAttributes``, the default) takes
only the messages whose attributes it accepts. An SQS message's attributes are metadata its
consumer reads without parsing the body. The attributes are given as plain values and spelled
here in the services' wire form (the same for both); a value's Python type says its type::

    str                          -> String
    int, float (not bool)        -> Number
    bytes                        -> Binary
    list or tuple of str, int,   -> String.Array (a JSON array, as SNS takes it; SNS only:
      float, bool or None           SQS has no list type)

What differs between the services is data (:class:`AttributeRules`: ``SNS_ATTRIBUTES``,
``SQS_ATTRIBUTES``); the rest AWS documents alike for both (Amazon SNS message attributes,
Amazon SQS message attributes): at most 10 to a message (an SQS subscription with raw delivery
drops an SNS message with more), a name of 1-256 characters of
``A-Za-z0-9_-.``, not starting or ending with a period, no two periods in a row, not starting
with ``AWS.`` or ``Amazon.`` in any casing; no empty value. Every part (name, type, value)
counts toward the message's byte limit, so :func:`attributes_size` is added to the body's.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from .._errors import UsageError

__all__ = [
    "MAX_MESSAGE_ATTRIBUTES",
    "SNS_ATTRIBUTES",
    "SQS_ATTRIBUTES",
    "AttributeRules",
    "AttributeValue",
    "Encoded",
    "MessageAttributes",
    "attributes_of",
    "attributes_size",
    "checked_attributes",
    "encode_attributes",
]

MAX_MESSAGE_ATTRIBUTES = 10
MAX_NUMBER = 10**126  # a Number (SNS's and SQS's): up to 38 digits, at most 10^126 in size
_NAME = re.compile(r"[A-Za-z0-9_\-.]{1,256}")
_RESERVED = ("aws.", "amazon.")

ArrayElement: TypeAlias = str | int | float | bool | None
#: One attribute's value; its Python type decides its SNS type (see the module's table).
AttributeValue: TypeAlias = str | int | float | bytes | Sequence[ArrayElement]
#: ``message_attributes=``: the same for every item, or a function of the item.
MessageAttributes: TypeAlias = (
    Mapping[str, AttributeValue] | Callable[[Any], Mapping[str, AttributeValue]]
)
#: The wire form: ``{name: {"DataType": ..., "StringValue" | "BinaryValue": ...}}``.
Encoded: TypeAlias = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class AttributeRules:
    """What one service takes as message attributes, where SNS and SQS differ."""

    #: The service's name in error messages: ``SNS``, ``SQS``.
    service: str
    #: Whether a list is a ``String.Array`` (SNS) or refused (SQS has no list type).
    arrays: bool


SNS_ATTRIBUTES = AttributeRules("SNS", arrays=True)
SQS_ATTRIBUTES = AttributeRules("SQS", arrays=False)


def checked_attributes(
    given: MessageAttributes | None, rules: AttributeRules
) -> Callable[[Any], Encoded] | None:
    """A function from an item to its encoded attributes; a fixed mapping is checked right here.

    Raises :class:`UsageError` for a mapping that the service would refuse, naming the attribute.
    """
    if given is None:
        return None
    if callable(given):
        of_item = given
        return lambda item: encode_attributes(of_item(item), rules)
    encoded = encode_attributes(given, rules)
    return lambda _item: encoded


def attributes_of(source: Callable[[Any], Encoded] | None, item: Any) -> Encoded | None:
    """The item's encoded attributes (``None``: it has none)."""
    return None if source is None else source(item) or None


def encode_attributes(attributes: Mapping[str, AttributeValue], rules: AttributeRules) -> Encoded:
    """The wire form of ``attributes``, each name and value checked by ``rules`` first."""
    if not isinstance(attributes, Mapping):
        raise UsageError(
            f"message attributes are a mapping of name to value, got {type(attributes).__name__}"
        )
    if len(attributes) > MAX_MESSAGE_ATTRIBUTES:
        raise UsageError(
            f"{len(attributes)} message attributes: {rules.service} takes at most "
            f"{MAX_MESSAGE_ATTRIBUTES} to a message; put the rest in the message itself"
        )
    return {
        _checked_name(name): _encoded_value(name, value, rules)
        for name, value in attributes.items()
    }


def attributes_size(encoded: Encoded | None) -> int:
    """The bytes ``encoded`` adds to a message: every name, type and value (as AWS counts)."""
    size = 0
    for name, spelled in (encoded or {}).items():
        value = spelled.get("StringValue", spelled.get("BinaryValue", b""))
        raw = value if isinstance(value, bytes) else str(value).encode()
        size += len(name.encode()) + len(spelled["DataType"]) + len(raw)
    return size


def _checked_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(
            f"message attribute name {name!r}: use 1-256 characters of A-Z, a-z, 0-9, "
            "underscore, hyphen and period"
        )
    if name.startswith(".") or name.endswith(".") or ".." in name:
        raise UsageError(
            f"message attribute name {name!r}: a name does not start or end with a period, "
            "nor has two in a row"
        )
    if name.lower().startswith(_RESERVED):
        raise UsageError(
            f"message attribute name {name!r}: the prefixes AWS. and Amazon. are reserved "
            "by AWS; choose another name"
        )
    return name


def _encoded_value(name: str, value: object, rules: AttributeRules) -> dict[str, Any]:
    service = rules.service
    if isinstance(value, bool):  # (a bool is an int): an SNS filter matches it in an array only
        in_an_array = f" or the array [{json.dumps(value)}]" if rules.arrays else ""
        raise UsageError(
            f"message attribute {name!r}: {value!r} has no {service} type; give the string "
            f"{json.dumps(value)!r}{in_an_array}"
        )
    if isinstance(value, str):
        return {"DataType": "String", "StringValue": _non_empty(name, value, service)}
    if isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > MAX_NUMBER:
            raise UsageError(
                f"message attribute {name!r}: {value!r} is not a number {service} takes "
                "(finite, within 10**126 either side of zero)"
            )
        return {"DataType": "Number", "StringValue": repr(value)}
    if isinstance(value, bytes):
        return {"DataType": "Binary", "BinaryValue": _non_empty(name, value, service)}
    if isinstance(value, list | tuple) and not rules.arrays:
        raise UsageError(
            f"message attribute {name!r}: {service} has no list type (String.Array is SNS's); "
            "give one value, or a JSON string of the list (json.dumps) for the consumer to parse"
        )
    if isinstance(value, list | tuple) and all(_is_array_element(e) for e in value):
        return {"DataType": "String.Array", "StringValue": json.dumps(list(value))}
    raise UsageError(
        f"message attribute {name!r}: {type(value).__name__} has no {service} type; give a str "
        "(String), an int or float (Number), bytes (Binary)"
        + (", or a list of str, numbers, bools and None (String.Array)" if rules.arrays else "")
    )


def _non_empty(name: str, value: Any, service: str) -> Any:
    if not value:
        raise UsageError(f"message attribute {name!r} is empty: {service} refuses an empty value")
    return value


def _is_array_element(element: object) -> bool:
    if isinstance(element, float):
        return math.isfinite(element)
    return element is None or isinstance(element, str | int)
