"""``HttpTarget``: one HTTP request per item, through aiohttp."""

from __future__ import annotations

import contextlib
import email.utils
import json
import time
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
    Throttled,
    TransportError,
    UsageError,
)
from .._target import SharedTarget
from .._wire import encode_raw_json

__all__ = ["HttpTarget"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class HttpTarget(SharedTarget):
    """Send each item as a JSON request body to ``url``; the reply's JSON (or text) is the value.

    429 and 503 are retryable and honour ``Retry-After``; other 5xx are retryable; other 4xx are
    not. A request that was sent and got no answer is retried only for idempotent methods (or
    with ``retry_ambiguous=True``). ``session`` may be your own ``aiohttp.ClientSession``;
    otherwise one is made per fan-out, with a connection limit equal to the cap.

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
        self._session: Any = session
        idempotent = self.method in IDEMPOTENT_METHODS
        self.retry_ambiguous = idempotent if retry_ambiguous is None else retry_ambiguous
        self.ambiguous_timeouts = not self.retry_ambiguous

    def __repr__(self) -> str:
        return f"<HttpTarget {self.method} {self.url}>"

    async def acquire(self, *, concurrency: int, timeout: float | None) -> None:
        if self._given_session is not None:
            return
        try:
            import aiohttp
        except ImportError as exc:  # pragma: no cover - depends on the extras installed
            raise UsageError("HttpTarget needs aiohttp: pip install 'aiofanout[http]'") from exc
        connector = aiohttp.TCPConnector(limit=concurrency)
        self._session = aiohttp.ClientSession(connector=connector)

    async def release(self) -> None:
        if self._given_session is not None or self._session is None:
            return  # the user's own session: theirs to close
        session, self._session = self._session, None
        await session.close()

    def prepare(self, item: Any) -> bytes:
        return encode_raw_json(item, what="an HttpTarget item")

    async def call(self, payload: Any, *, timeout: float | None) -> Any:
        import aiohttp

        if self._session is None:
            raise UsageError("HttpTarget is not open: pass it to dispatch_many or stream")
        try:
            async with self._session.request(
                self.method, self.url, data=payload, headers=self.headers
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
