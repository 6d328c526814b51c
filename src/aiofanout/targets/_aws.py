"""What the AWS targets share: a client sized for the fan-outs using it, and error translation.

Three botocore defaults silently break a fan-out, so the client is built here and nowhere else:

- ``max_pool_connections`` defaults to 10: aiohttp's connector then holds every call past the
  tenth in a queue with no timeout, so a cap of 200 becomes 10. It follows the caps here (of all
  the fan-outs open at once: ``SharedTarget`` makes a larger client when one opens).
- botocore's ``legacy`` retry mode re-sends a call up to 5 times on a read timeout, a connection
  error, a 429 or a 5xx, invisibly; a slow ``RequestResponse`` invoke ran 5 times. Its own retries
  are off here (``total_max_attempts=1``) and the engine decides, knowing what is safe.
- ``read_timeout`` defaults to 60 s; it is set above the attempt timeout so the engine's timeout,
  not botocore's, ends a slow call.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from .._errors import (
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
from ._shared import SharedTarget

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


def _aioboto3() -> Any:
    try:
        import aioboto3
    except ImportError as exc:
        raise UsageError("the AWS targets need aioboto3: pip install 'aiofanout[aws]'") from exc
    return aioboto3


def client_config(*, concurrency: int, timeout: float | None, long_calls: bool) -> Any:
    """An ``AioConfig`` sized to the fan-out: pool = cap, no botocore retries, long reads.

    ``long_calls``: the call may legitimately take as long as the work (a ``RequestResponse``
    invoke), so with no attempt timeout the read timeout covers the longest Lambda run.
    """
    from aiobotocore.config import AioConfig

    if timeout is not None:
        read_timeout = timeout + READ_TIMEOUT_SLACK
    else:
        read_timeout = LAMBDA_MAX_SECONDS + READ_TIMEOUT_SLACK if long_calls else 60.0
    return AioConfig(
        max_pool_connections=concurrency,
        retries={"total_max_attempts": 1, "mode": "standard"},
        read_timeout=read_timeout,
        connect_timeout=min(CONNECT_TIMEOUT, read_timeout),
        tcp_keepalive=True,
    )


def sqs_client_maker(
    *, session: Any, endpoint_url: str | None, region_name: str | None, pool: int, wait: float
) -> Callable[[], Awaitable[tuple[Any, Callable[[], Awaitable[object]]]]]:
    """How a reply queue makes its own SQS client: ``pool`` connections, polls of ``wait`` s.

    botocore may retry these calls itself: a receive or a delete is safe to send again.
    """

    async def make() -> tuple[Any, Callable[[], Awaitable[object]]]:
        from aiobotocore.config import AioConfig

        config = AioConfig(
            max_pool_connections=pool,
            read_timeout=wait + READ_TIMEOUT_SLACK,
            connect_timeout=CONNECT_TIMEOUT,
            tcp_keepalive=True,
        )
        factory = (session or _aioboto3().Session()).client(
            "sqs", endpoint_url=endpoint_url, region_name=region_name, config=config
        )
        client = await factory.__aenter__()
        return client, client.close

    return make


class AwsClientTarget(SharedTarget[Any]):
    """A target that calls one AWS service through an aiobotocore client it makes and sizes.

    With ``client=``, that client is used as it is (and not closed; a warning says when its pool
    is under the cap); with ``session=``, clients are made from it; otherwise from a new
    ``aioboto3.Session()``.
    """

    service: str = ""
    long_calls = False

    def __init__(
        self,
        *,
        session: Any = None,
        client: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
    ) -> None:
        self._session = session
        self._given_client = client
        self.endpoint_url = check_endpoint_url(endpoint_url)
        self.region_name = region_name

    @property
    def client(self) -> Any:
        """The client new calls go to (``UsageError`` when the target is not open)."""
        with self.lease() as client:
            return client

    async def acquire(self, *, concurrency: int, timeout: float | None) -> Any:
        if self._given_client is not None:
            _warn_if_pool_too_small(self._given_client, concurrency)
            return self._given_client
        session = self._session or _aioboto3().Session()
        config = client_config(concurrency=concurrency, timeout=timeout, long_calls=self.long_calls)
        from botocore.exceptions import NoRegionError

        try:
            # The context manager's enter makes the client; its exit is client.close(), in
            # release().
            return await session.client(
                self.service,
                endpoint_url=self.endpoint_url,
                region_name=self.region_name,
                config=config,
            ).__aenter__()
        except NoRegionError as exc:
            raise UsageError(
                f"no AWS region is configured for the {self.service} client: pass "
                "region_name='us-east-1' (or yours) to the target, or set AWS_REGION / "
                "AWS_DEFAULT_REGION, or a region in your AWS profile"
            ) from exc

    async def release(self, resource: Any) -> None:
        if resource is not self._given_client:  # the user's own client is theirs to close
            await resource.close()


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


def _warn_if_pool_too_small(client: Any, concurrency: int) -> None:
    pool = getattr(getattr(client, "meta", None), "config", None)
    size = getattr(pool, "max_pool_connections", None)
    if isinstance(size, int) and size < concurrency:
        warnings.warn(
            f"the client's max_pool_connections is {size}, under the fan-out's concurrency of "
            f"{concurrency}: only {size} calls can be in flight. Build the client with "
            f"AioConfig(max_pool_connections={concurrency}), or let the target make its own",
            UserWarning,
            stacklevel=5,
        )


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
