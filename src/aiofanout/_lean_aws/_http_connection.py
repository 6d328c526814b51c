"""One kept-alive HTTP/1.1 connection of the lean path, its answers parsed by httptools.

One request at a time: its bytes written, its answer (status, headers, body) handed to a future.
A read timeout restarts with every byte that arrives; an answer may be sized by
``Content-Length``, chunked, or end with the connection. A connection that failed, timed out,
was aborted or received more than the one answer asked for is marked not reusable. The pool
(``_connection_pool``) decides what to do with it.
"""

from __future__ import annotations

import asyncio

__all__ = [
    "KEEPALIVE",
    "Answer",
    "ConnectFailed",
    "ConnectTimedOut",
    "ConnectionDropped",
    "HttpConnection",
    "ReadTimedOut",
    "TransportError",
]

#: An idle connection older than this is closed rather than reused (the server, or a NAT
#: between, may have let go of it without a word).
KEEPALIVE = 60.0


class TransportError(Exception):
    """The call did not get an answer: the base of this module's failures."""


class ConnectFailed(TransportError):
    """No connection could be opened (refused, unreachable, DNS, TLS)."""


class ConnectTimedOut(TransportError):
    """Opening the connection took longer than the connect timeout."""


class ReadTimedOut(TransportError):
    """Nothing arrived for the read timeout after the request was sent."""


class ConnectionDropped(TransportError):
    """The connection closed, or the answer could not be parsed, before the answer ended."""


Answer = tuple[int, dict[str, str], bytes]


class HttpConnection(asyncio.Protocol):
    """One kept-alive connection: one request at a time, its answer handed to ``waiter``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float) -> None:
        import httptools

        self._loop = loop
        self._read_timeout = read_timeout
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = loop.create_future()
        self.idle_since = 0.0
        self.reusable = True
        self._waiter: asyncio.Future[Answer] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._until_close = False  # this answer has no length: it ends when the connection does

    # -- the caller's side --------------------------------------------------------------------

    def send(self, request: bytes, body: bytes) -> asyncio.Future[Answer]:
        """Write one request; the future of its answer."""
        assert self.transport is not None
        waiter = self._waiter = self._loop.create_future()
        self._last_read = now = self._loop.time()
        self._timer = self._loop.call_at(now + self._read_timeout, self._check_read_timeout)
        self.transport.writelines((request, body))
        return waiter

    def usable(self, now: float) -> bool:
        """Whether this idle connection may carry another request."""
        return (
            self.reusable
            and not self.closed.done()
            and self.transport is not None
            and not self.transport.is_closing()
            and now - self.idle_since < KEEPALIVE
        )

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close at once, unsent bytes and all: the exchange on it is in an unknown state."""
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    def _check_read_timeout(self) -> None:
        # One timer per request, moved on only when it fires: cheaper than a new timer per read.
        due = self._last_read + self._read_timeout
        if self._loop.time() < due:
            self._timer = self._loop.call_at(due, self._check_read_timeout)
            return
        self._timer = None
        self._fail(ReadTimedOut(f"nothing read for {self._read_timeout:g} s"))
        self.abort()

    def _fail(self, error: TransportError) -> None:
        self.reusable = False
        waiter, self._waiter = self._waiter, None
        self._stop_timer()
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- asyncio's side -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing was asked: the server is not speaking HTTP to us
            self.abort()
            return
        self._last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except Exception as exc:  # httptools' parse errors, an upgrade (101): not an answer here
            self._fail(ConnectionDropped(f"the answer could not be parsed: {exc!r}"))
            self.abort()

    def eof_received(self) -> bool | None:
        self.reusable = False
        if self._until_close:  # an answer without a length ends here, whole
            self._until_close = False
            self._complete(self._parser.get_status_code())
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._fail(ConnectionDropped(f"the connection closed before the answer ended ({exc})"))
        if not self.closed.done():
            self.closed.set_result(None)

    # -- httptools' callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._waiter is None:  # more than the one answer asked for: out of step, drop it
            self.reusable = False
            self.abort()
        self._headers = {}
        self._body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        seen = self._headers.get(key)
        self._headers[key] = text if seen is None else f"{seen}, {text}"

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        self._until_close = (
            status >= 200
            and status not in (204, 304)
            and "content-length" not in self._headers
            and "transfer-encoding" not in self._headers
        )

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue): the real one follows
            return
        if not self._parser.should_keep_alive():
            self.reusable = False
        self._until_close = False
        self._complete(status)

    def _complete(self, status: int) -> None:
        waiter, self._waiter = self._waiter, None
        self._stop_timer()
        if waiter is not None and not waiter.done():
            waiter.set_result((status, self._headers, b"".join(self._body)))
