"""What a sender's fan-in makes of a worker's refusal that comes back as an on-failure record."""

from __future__ import annotations

import json

from aiofanout import TaskTimedOut
from aiofanout.errors import BadSignature, InProgress


def _on_failure_record(envelope_id: str, error_type: str) -> str:
    """Lambda's asynchronous invocation record, as an on-failure destination sends it."""
    return json.dumps(
        {
            "version": "1.0",
            "requestContext": {
                "requestId": "r-1",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3,
            },
            "requestPayload": {"v": 1, "id": envelope_id, "task": "t", "sig": "forged"},
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "responsePayload": {
                "errorType": error_type,
                "errorMessage": "envelope signature does not match",
            },
        }
    )


def test_an_on_failure_record_of_a_refused_envelope_reports_bad_signature() -> None:
    from aiofanout.targets._reply_router import parse, reply_id  # white-box: the router's parser

    record = _on_failure_record("e-1", "BadSignature")
    value, error = parse(record)

    assert reply_id(record) == "e-1"
    assert value is None
    assert isinstance(error, BadSignature)
    assert not error.retryable
    assert "RetriesExhausted after 3 invocations" in error.message


def test_library_errors_in_an_on_failure_record_keep_their_type() -> None:
    from aiofanout.targets._reply_router import parse  # white-box: the reply router's parser

    _, timed_out = parse(_on_failure_record("e-2", "TaskTimedOut"))
    _, in_progress = parse(_on_failure_record("e-3", "InProgress"))

    assert isinstance(timed_out, TaskTimedOut)
    assert isinstance(timed_out, TimeoutError)
    assert isinstance(in_progress, InProgress)
