"""The one AWS core: the aioboto3 import, sessions, client settings, botocore errors translated.

Every piece that talks to AWS itself (the targets, the worker's replies and idempotency store,
claims, journals, sources, the local runtime) gets its session and client settings here, and has
botocore's exceptions turned into the library's tree here, so a fix lands once.

Three botocore defaults silently break a fan-out, so client settings are built here and nowhere
else:

- ``max_pool_connections`` defaults to 10: aiohttp's connector then holds every call past the
  tenth in a queue with no timeout, so a cap of 200 becomes 10. It follows the caps (of all the
  fan-outs open at once: ``SharedTarget`` makes a larger client when one opens).
- botocore's ``legacy`` retry mode re-sends a call up to 5 times on a read timeout, a connection
  error, a 429 or a 5xx, invisibly; a slow ``RequestResponse`` invoke ran 5 times. Its own retries
  are off (``total_max_attempts=1``) and the engine decides, knowing what is safe.
- ``read_timeout`` defaults to 60 s; it is set above the attempt timeout so the engine's timeout,
  not botocore's, ends a slow call.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from ._errors import (
    AccessDenied,
    AmbiguousError,
    ConnectError,
    FanoutError,
    NotFound,
    PayloadTooLarge,
    RequestRejected,
    ServerError,
    ServiceError,
    Throttled,
    TransportError,
    UsageError,
)

__all__ = [
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT_SLACK",
    "THROTTLING_CODES",
    "aioboto3_module",
    "aws_session",
    "check_endpoint_url",
    "client_config",
    "client_timeouts",
    "from_client_error",
    "no_region_error",
    "translate_botocore_errors",
]

LAMBDA_MAX_SECONDS = 900  # the longest a function may run
READ_TIMEOUT_SLACK = 5.0
CONNECT_TIMEOUT = 10.0

THROTTLING_CODES = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "Throttling",
        "RequestThrottled",
        "RequestLimitExceeded",
        "SlowDown",
        "EC2ThrottledException",
        "KMSThrottlingException",
        "AWS.SimpleQueueService.RequestThrottled",
    }
)
NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
        "NonExistentQueue",
        "NotFound",
    }
)
ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "MissingAuthenticationToken",
    }
)
TOO_LARGE_CODES = frozenset(
    {
        "RequestTooLargeException",
        "RequestEntityTooLargeException",
        "BatchRequestTooLong",
        "AWS.SimpleQueueService.BatchRequestTooLong",
    }
)


def aioboto3_module(feature: str = "talking to AWS") -> Any:
    """The ``aioboto3`` module; a :class:`UsageError` naming ``feature`` and the extra if absent.

    The one import of aioboto3: it is an extra (``aiofanout[aws]``), so the core installs light.
    """
    try:
        import aioboto3
    except ImportError as exc:  # pragma: no cover - depends on the extras installed
        raise UsageError(f"{feature} needs aioboto3: pip install 'aiofanout[aws]'") from exc
    return aioboto3


def aws_session(session: Any, feature: str) -> Any:
    """``session`` if given, else a new aioboto3 ``Session`` (see :func:`aioboto3_module`)."""
    if session is not None:
        return session
    return aioboto3_module(feature).Session()


def client_config(*, concurrency: int, timeout: float | None, long_calls: bool) -> Any:
    """An ``AioConfig`` sized to the fan-out: pool = cap, no botocore retries, long reads.

    ``long_calls``: the call may legitimately take as long as the work (a ``RequestResponse``
    invoke), so with no attempt timeout the read timeout covers the longest Lambda run.
    """
    from aiobotocore.config import AioConfig

    read_timeout, connect_timeout = client_timeouts(timeout=timeout, long_calls=long_calls)
    return AioConfig(
        max_pool_connections=concurrency,
        retries={"total_max_attempts": 1, "mode": "standard"},
        read_timeout=read_timeout,
        connect_timeout=connect_timeout,
        tcp_keepalive=True,
    )


def client_timeouts(*, timeout: float | None, long_calls: bool) -> tuple[float, float]:
    """The read and connect timeouts of a client for attempts of ``timeout`` s (see above)."""
    if timeout is not None:
        read_timeout = timeout + READ_TIMEOUT_SLACK
    else:
        read_timeout = LAMBDA_MAX_SECONDS + READ_TIMEOUT_SLACK if long_calls else 60.0
    return read_timeout, min(CONNECT_TIMEOUT, read_timeout)


def check_endpoint_url(endpoint_url: str | None) -> str | None:
    """``endpoint_url`` if it is an http(s) URL; a :class:`UsageError` naming the fix if not."""
    if endpoint_url is None:
        return None
    if not endpoint_url.startswith(("http://", "https://")):
        raise UsageError(
            f"endpoint_url={endpoint_url!r} is not a URL: give the scheme too, for example "
            f"endpoint_url='http://{endpoint_url}'"
        )
    return endpoint_url


def no_region_error(service: str, exc: BaseException) -> UsageError:
    """The :class:`UsageError` for botocore's ``NoRegionError`` when making a ``service`` client."""
    error = UsageError(
        f"no AWS region is configured for the {service} client: pass "
        "region_name='us-east-1' (or yours), or set AWS_REGION / AWS_DEFAULT_REGION, or a "
        "region in your AWS profile"
    )
    error.__cause__ = exc
    return error


@contextlib.contextmanager
def translate_botocore_errors(*, ambiguous_retryable: bool = False) -> Iterator[None]:
    """Turn botocore's exceptions into the library's, chained with ``from``.

    ``ambiguous_retryable``: whether a call that was sent and got no answer may be re-sent.
    """
    from botocore import exceptions as bce

    try:
        yield
    except bce.ClientError as exc:
        raise from_client_error(exc) from exc
    except (bce.EndpointConnectionError, bce.ConnectTimeoutError) as exc:
        raise ConnectError(f"could not connect: {exc}") from exc
    except (bce.ReadTimeoutError, bce.ConnectionClosedError) as exc:
        raise AmbiguousError(
            f"sent, but no answer came back ({type(exc).__name__}): the call may have run. {exc}",
            retryable=ambiguous_retryable,
        ) from exc
    except bce.NoCredentialsError as exc:
        raise AccessDenied(f"{exc}: configure AWS credentials (or an endpoint_url)") from exc
    except (bce.NoRegionError, bce.ParamValidationError) as exc:
        raise UsageError(str(exc)) from exc
    except bce.BotoCoreError as exc:
        raise TransportError(f"{type(exc).__name__}: {exc}", retryable=False) from exc


def from_client_error(exc: Any) -> FanoutError:  # noqa: PLR0911 - a return per error class
    """The library error for a botocore ``ClientError`` (code, HTTP status, retry-after)."""
    response = exc.response
    error = response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message") or exc)
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    detail = f"{code}: {message}" if code else message
    if code in THROTTLING_CODES or status == 429:
        reason = response.get("Reason")
        return Throttled(
            f"{detail}" + (f" ({reason})" if reason else ""),
            retry_after=_retry_after(response),
            code=code,
            reason=str(reason) if reason else None,
        )
    if code in NOT_FOUND_CODES or status == 404:
        return NotFound(detail, code=code)
    if code in TOO_LARGE_CODES or status == 413:
        return PayloadTooLarge(detail, code=code)
    if code in ACCESS_CODES or status in (401, 403):
        return AccessDenied(detail, code=code)
    if status >= 500:
        return ServerError(detail, code=code, retry_after=_retry_after(response))
    if 400 <= status < 500:
        return RequestRejected(detail, code=code)
    return ServiceError(detail, code=code)


def _retry_after(response: dict[str, Any]) -> float | None:
    value = response.get("retryAfterSeconds")
    if value is None:
        value = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("retry-after")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def aws_region(region_name: str | None) -> str | None:
    """The region a client given ``region_name`` talks to, as botocore finds it in the env."""
    return region_name or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
