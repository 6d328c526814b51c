"""The local Lambda's request validation, in-process: one validator for every operation.

White-box: each test imports the internal function it tests (the route table, the validator).

The end-to-end answers are in ``test_lambda_fidelity.py``; here, fast, that the route table
names each operation as botocore's service model for ``lambda`` 2015-03-31 does (method and
path), and that the validator answers every operation of the model in AWS's shape.
"""

from __future__ import annotations

import re
from typing import Any

import botocore.session
import pytest

MODEL = botocore.session.get_session().get_service_model("lambda")


class AnyApi:
    """Stands in for every API of the table: each handler is a name (only the table is read)."""

    def __getattr__(self, name: str) -> Any:
        return name


def test_each_route_is_the_operation_the_model_puts_there() -> None:
    from aiofanout.local._control_plane._routes import Apis, operations

    api: Any = AnyApi()
    apis = Apis(api, api, api, api, api, api, api)
    for method, path, name, _ in operations(apis):
        http = MODEL.operation_model(name).http
        modelled = re.sub(r"\{[^}]+\}", "{}", http["requestUri"].partition("?")[0])
        assert (method, re.sub(r"\{[^}]+\}", "{}", path).rstrip("/")) == (
            http["method"],
            modelled.rstrip("/"),
        ), name


@pytest.mark.parametrize("operation", MODEL.operation_names)
def test_every_operation_answers_its_missing_members_in_aws_words(operation: str) -> None:
    from aiofanout.local._control_plane._http import ApiError
    from aiofanout.local._control_plane._validation import validate

    shape = MODEL.operation_model(operation).input_shape
    required = [] if shape is None else [m for m in shape.required_members if m != "Runtime"]
    if not required:
        validate(operation, {})  # nothing required: nothing to refuse
        return
    with pytest.raises(ApiError) as caught:
        validate(operation, {})
    error = caught.value
    assert (error.status, error.code) == (400, "ValidationException")
    count = len(required)
    noun = "validation error" if count == 1 else "validation errors"
    assert error.message.startswith(f"{count} {noun} detected: Value null at '")
    assert error.message.count("Member must not be null") == count


def test_values_are_shown_as_aws_shows_them() -> None:
    from aiofanout.local._control_plane._http import ApiError
    from aiofanout.local._control_plane._validation import validate

    with pytest.raises(ApiError) as caught:
        validate(
            "CreateFunction",
            {
                "FunctionName": "f",
                "Role": "arn:aws:iam::123456789012:role/r",
                "Code": {},
                "Timeout": 0,
                "Environment": {"Variables": {"1bad": "x"}},
            },
        )
    message = caught.value.message
    assert message.startswith("2 validation errors detected: Value '0' at 'timeout'")
    # A map's keys fail as a whole; the variables are sensitive (model): their values unshown.
    assert "Value at 'environment.variables' failed to satisfy constraint: " in message
    assert "Map keys must satisfy constraint: [Member must satisfy regular expression" in message
