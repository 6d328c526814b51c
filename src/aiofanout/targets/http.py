"""``HttpTarget``: one HTTP request per item, through aiohttp."""

from __future__ import annotations

import contextlib
import email.utils
import json
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .._errors import (
    AccessDenied,
    AmbiguousError,
    ConnectError,
    FanoutError,
    NotFound,
    PayloadTooLarge,
    RequestRejected,
    ServerError,
    Throttled,
    TransportError,
    UsageError,
)
from .._wire import encode_raw_json
from ._shared import SharedTarget

__all__ = ["HttpTarget"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
READ_TIMEOUT_SLACK = 5.0  # aiohttp's own timeout sits this far above the attempt timeout
CONNECT_TIMEOUT = 10.0
#: Names a journaled item's requests alike on every attempt and resume (draft-ietf-httpapi-
#: idempotency-key-header), so a server that honours it runs the item once.
IDEMPOTENCY_HEADER = "Idempotency-Key"


class HttpTarget(SharedTarget[Any]):
    """Send each item as a JSON request body to ``url``; the reply's JSON (or text) is the value.

    429 and 503 are retryable and honour ``Retry-After``; other 5xx are retryable; other 4xx are
    not. A request that was sent and got no answer is retried only for idempotent methods (or
    with ``retry_ambiguous=True``). ``session`` may be your own ``aiohttp.ClientSession`` (a
    warning says when its connection limit is under the cap); otherwise the target makes one
    with a connection limit that fits every fan-out using it, and closes it.

    Example::

        result = await dispatch_many(HttpTarget("http://127.0.0.1:8080/score"), docs,
                                     concurrency=20, timeout=5)
    """

    def __init__(
        self,
        url: str,
        *,
        method: str = "POST",
        session: Any = None,
        headers: dict[str, str] | None = None,
        retry_ambiguous: bool | None = None,
    ) -> None:
        self.url = url
        self.method = method.upper()
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self._given_session = session
        idempotent = self.method in IDEMPOTENT_METHODS
        self.retry_ambiguous = idempotent if retry_ambiguous is None else retry_ambiguous
        self.ambiguous_timeouts = not self.retry_ambiguous

    def __repr__(self) -> str:
        return f"<HttpTarget {self.method} {self.url}>"

    def span_description(self) -> tuple[str, str, Mapping[str, str | int]]:
        """Attempt spans as OpenTelemetry's HTTP client spans (the address, never the query)."""
        address = urlsplit(self.url).hostname or ""
        attributes = {"http.request.method": self.method, "server.address": address}
        return self.method, "client", attributes

    async def acquire(self, *, concurrency: int, timeout: float | None) -> Any:
        if self._given_session is not None:
            _warn_if_session_too_small(self._given_session, concurrency)
            return self._given_session
        try:
            import aiohttp
        except ImportError as exc:  # pragma: no cover - depends on the extras installed
            raise UsageError("HttpTarget needs aiohttp: pip install 'aiofanout[http]'") from exc
        # aiohttp's default ends every request at 300 s; the engine's attempt timeout ends a slow
        # one here, and this only backs it up.
        total = None if timeout is None else timeout + READ_TIMEOUT_SLACK
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency),
            timeout=aiohttp.ClientTimeout(total=total, sock_connect=CONNECT_TIMEOUT),
        )

    async def release(self, resource: Any) -> None:
        if resource is not self._given_session:  # the user's own session is theirs to close
            await resource.close()

    def prepare(self, item: Any) -> bytes:
        return encode_raw_json(item, what="an HttpTarget item")

    def prepare_keyed(self, item: Any, key: str) -> _KeyedBody:
        """The body, sent with an ``Idempotency-Key: <run id>:<token>:<index>`` header."""
        return _KeyedBody(self.prepare(item), {**self.headers, IDEMPOTENCY_HEADER: key})

    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        import aiohttp

        keyed = isinstance(payload, _KeyedBody)
        data, headers = (payload.body, payload.headers) if keyed else (payload, self.headers)
        try:
            with self.lease() as session:
                async with session.request(
                    self.method, self.url, data=data, headers=headers
                ) as response:
                    body = await response.read()
            if response.status >= 400:
                raise http_error(response.status, response.headers.get("Retry-After"), body)
            return _decode(body, response.content_type)
        except (aiohttp.ClientConnectorError, aiohttp.ClientConnectionResetError) as exc:
            raise ConnectError(f"could not connect to {self.url}: {exc}") from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise AmbiguousError(
                f"{self.method} {self.url} was sent, but the connection dropped: {exc}",
                retryable=self.retry_ambiguous,
            ) from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"{self.method} {self.url}: {exc}", retryable=False) from exc


@dataclass(frozen=True, slots=True)
class _KeyedBody:
    """A journaled item's request: its body and the headers naming it."""

    body: bytes
    headers: dict[str, str]


def _warn_if_session_too_small(session: Any, concurrency: int) -> None:
    limit = getattr(getattr(session, "connector", None), "limit", None)
    if isinstance(limit, int) and 0 < limit < concurrency:  # 0 is no limit
        warnings.warn(
            f"the session's connection limit is {limit}, under the fan-out's concurrency of "
            f"{concurrency}: only {limit} requests can be in flight. Build the session with "
            f"aiohttp.TCPConnector(limit={concurrency}), or let the target make its own",
            UserWarning,
            stacklevel=5,
        )


def _decode(body: bytes, content_type: str) -> Any:
    if content_type == "application/json" or body[:1] in (b"{", b"["):
        with contextlib.suppress(ValueError):
            return json.loads(body)
    return body.decode(errors="replace")


def http_error(status: int, retry_after: str | None, body: bytes) -> FanoutError:
    """The library error for an HTTP error status."""
    text = body.decode(errors="replace")[:300]
    message = f"HTTP {status}: {text}" if text else f"HTTP {status}"
    hint = parse_retry_after(retry_after)
    if status == 429:
        return Throttled(message, retry_after=hint, code=str(status))
    if status >= 500:
        return ServerError(message, retry_after=hint, code=str(status))
    if status == 404:
        return NotFound(message, code=str(status))
    if status in (401, 403):
        return AccessDenied(message, code=str(status))
    if status == 413:
        return PayloadTooLarge(message, code=str(status))
    return RequestRejected(message, code=str(status))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
