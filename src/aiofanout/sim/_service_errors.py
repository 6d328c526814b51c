"""AWS's error answers as botocore raises them: ``ClientError`` with AWS's error shape.

The simulated clients raise these so a target's own translation of botocore errors runs, as it
does against AWS.
"""

from __future__ import annotations

from typing import Any

from .._errors import UsageError

__all__ = ["client_error_class", "service_error"]


def client_error_class() -> Any:
    """Botocore's ``ClientError`` (the ``aws`` extra)."""
    try:
        from botocore.exceptions import ClientError
    except ImportError as exc:  # pragma: no cover - depends on the extras installed
        raise UsageError(
            "aiofanout.sim's clients need botocore: pip install 'aiofanout[aws]'"
        ) from exc
    return ClientError


def service_error(operation: str, status: int, code: str, text: str, /, **fields: Any) -> Exception:
    """A ``ClientError`` as botocore raises it for AWS's error response."""
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": text},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 0},
        **fields,
    }
    error: Exception = client_error_class()(response, operation)
    return error
