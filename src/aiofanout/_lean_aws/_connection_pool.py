"""HTTP/1.1 for the lean path: kept-alive connections on asyncio, answers parsed by httptools.

A signed call to Lambda or SQS is one POST and one answer on a kept-alive connection. aiohttp's
client spends about 0.1 ms of CPU per call on what such a call does not use (sessions, cookies,
redirects, proxies, tracing hooks, a request and a response object, stream readers): two
thirds of an unsigned call, and more than signing and the engine together (``benchmarks/aws.py``
measures both). So the lean path writes its request's bytes itself and has them answered by
httptools, the binding of llhttp (the C parser Node.js and aiohttp use) that uvicorn runs on.

What a call needs and no more: a pool of at most ``limit`` connections (callers beyond it wait
in turn), TLS, a connect timeout, a read timeout that restarts with every byte that arrives
(botocore's and aiohttp's meaning), ``Content-Length`` and chunked answers, ``Connection:
close``. A connection that failed, timed out or was cancelled mid-call is closed, never reused.
Failures are this module's own ``TransportError`` kinds; ``_client`` turns them into botocore's.
"""

from __future__ import annotations

import asyncio
import collections
import re
import socket
import ssl
from collections.abc import Callable, Mapping

__all__ = [
    "ConnectFailed",
    "ConnectTimedOut",
    "ConnectionDropped",
    "ConnectionPool",
    "ReadTimedOut",
    "TransportError",
]

#: An idle connection older than this is closed rather than reused (the server, or a NAT
#: between, may have let go of it without a word).
KEEPALIVE = 60.0
CLOSE_WAIT = 5.0  # at most, for asyncio to close the aborted sockets at close()


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


class _Connection(asyncio.Protocol):
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


class _Dialer:
    """Opens connections to one host and port: a connect timeout, TLS, TCP keep-alive.

    Each connect is a task of its own, so that ``stop()`` can end the ones under way; the
    caller awaiting one hands its own cancellation on to it.
    """

    def __init__(
        self, host: str, port: int, tls: ssl.SSLContext | None, connect_timeout: float
    ) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.connect_timeout = connect_timeout
        self._connecting: set[asyncio.Task[None]] = set()
        self._stopped = False

    async def dial(self, connection: _Connection) -> None:
        """Connect ``connection``.

        Raises ``ConnectFailed``, ``ConnectTimedOut`` or, when stopped meanwhile,
        ``ConnectionDropped``.
        """
        loop = asyncio.get_running_loop()
        connecting = loop.create_task(self._connect(loop, connection))
        self._connecting.add(connecting)
        connecting.add_done_callback(self._connecting.discard)
        try:
            await connecting
        except BaseException as exc:
            error = self._error(exc)
            if error is exc:
                raise
            raise error from exc

    async def stop(self) -> None:
        """End the connects under way (their callers get ``ConnectionDropped``)."""
        self._stopped = True
        for connecting in list(self._connecting):
            connecting.cancel()
        if self._connecting:
            await asyncio.wait(self._connecting)

    async def _connect(self, loop: asyncio.AbstractEventLoop, connection: _Connection) -> None:
        async with asyncio.timeout(self.connect_timeout):
            # Addresses one after another: with happy eyeballs on, Python 3.11 left the socket
            # of a connect cancelled as it completed unclosed (a long poll cancelled at a
            # deadline, in the fan-in tests).
            await loop.create_connection(lambda: connection, self.host, self.port, ssl=self.tls)
        sock: socket.socket | None = connection.transport.get_extra_info("socket")  # type: ignore[union-attr]
        if sock is not None:  # botocore's tcp_keepalive: a long poll's idle socket stays known
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    def _error(self, exc: BaseException) -> BaseException:
        """What a failed connect raises: its kind of ``TransportError``, or the cancellation."""
        where = f"{self.host}:{self.port}"
        if isinstance(exc, TimeoutError):
            return ConnectTimedOut(f"no connection to {where} within {self.connect_timeout:g} s")
        if isinstance(exc, OSError):
            return ConnectFailed(f"cannot connect to {where}: {exc}")
        task = asyncio.current_task()
        if (
            isinstance(exc, asyncio.CancelledError)
            and self._stopped
            and not (task and task.cancelling())
        ):
            return ConnectionDropped("the client was closed")  # stop() ended the connect
        return exc


class _Turns:
    """The callers waiting for a connection, served first come, first served.

    A caller is handed a connection another let go of, or a turn: ``None``, a free place in
    the pool to open one in. A turn is ``reserved`` until its caller takes the place, so no
    caller arriving meanwhile can take it too.
    """

    def __init__(self, give_back: Callable[[_Connection], None]) -> None:
        self._give_back = give_back  # where a connection handed to a cancelled caller goes
        self._waiting: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self.reserved = 0

    def __bool__(self) -> bool:
        return bool(self._waiting)

    async def wait(self, loop: asyncio.AbstractEventLoop) -> _Connection | None:
        """Wait for a connection, or for a turn to open one (``None``)."""
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        self._waiting.append(waiter)
        try:
            handed = await waiter
        except asyncio.CancelledError:
            if waiter in self._waiting:  # a cancelled caller keeps no one waiting behind it
                self._waiting.remove(waiter)
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()  # handed over as this call was cancelled: pass it on
                if handed is None:
                    self.reserved -= 1
                    self.pass_turn()
                else:
                    self._give_back(handed)
            raise
        if handed is None:
            self.reserved -= 1  # the place is taken as the caller opens its connection
        return handed

    def hand(self, connection: _Connection) -> bool:
        """Give ``connection`` to the first caller waiting; whether there was one."""
        return self._wake(connection)

    def pass_turn(self) -> None:
        """A place is free: the first caller waiting opens a connection in it."""
        if self._wake(None):
            self.reserved += 1

    def fail_all(self, error: Exception) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    def _wake(self, handed: _Connection | None) -> bool:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(handed)
                return True
        return False


class ConnectionPool:
    """At most ``limit`` kept-alive connections to one ``scheme://host:port``.

    ``request`` takes a free connection (the most recently used first), opens one while under
    the limit, or waits its turn. ``ssl_context`` is used for ``https`` (a default one if None).
    """

    def __init__(
        self,
        url: str,
        *,
        limit: int,
        connect_timeout: float,
        read_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        import urllib.parse

        split = urllib.parse.urlsplit(url)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        tls = None
        if split.scheme == "https":
            tls = ssl_context or ssl.create_default_context()
        port = split.port or (443 if split.scheme == "https" else 80)
        self._dialer = _Dialer(split.hostname, port, tls, connect_timeout)
        self.limit = limit
        self.read_timeout = read_timeout
        self._idle: list[_Connection] = []
        self._slots: set[_Connection] = set()  # the connections counted against the limit
        self._live: set[_Connection] = set()  # every socket not yet closed, counted or not
        self._turns = _Turns(self._release)
        self._closed = False

    async def request(self, head: bytes, body: bytes) -> Answer:
        """Send a request (its head, through the blank line, and its body); its answer.

        The status, the headers (names in lower case) and the body. Raises a
        ``TransportError`` when no whole answer came.
        """
        connection = await self._acquire()
        try:
            answer = await connection.send(head, body)
        except BaseException:
            connection.abort()  # cancelled or failed mid-exchange: never reuse it
            self._release(connection)
            raise
        self._release(connection)
        return answer

    async def close(self) -> None:
        """Close every connection; calls still waiting for one fail with ``ConnectionDropped``."""
        self._closed = True
        self._turns.fail_all(ConnectionDropped("the client was closed"))
        await self._dialer.stop()
        connections = [c for c in self._live if c.transport is not None]
        for connection in connections:  # abort: a TLS peer may never answer a polite close
            connection.abort()
        self._idle.clear()
        if connections:  # let asyncio close each socket before the loop ends
            await asyncio.wait([c.closed for c in connections], timeout=CLOSE_WAIT)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called: no call is sent any more."""
        return self._closed

    async def _acquire(self) -> _Connection:
        if self._closed:
            raise ConnectionDropped("the client was closed")
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._idle:
            connection = self._idle.pop()
            if connection.usable(now):
                return connection
            self._forget(connection)
        if len(self._slots) + self._turns.reserved >= self.limit or self._turns:
            handed = await self._turns.wait(loop)
            if self.closed:  # closed while this call waited
                if handed is not None:
                    self._release(handed)
                raise ConnectionDropped("the client was closed")
            if handed is not None:
                return handed
        return await self._open(loop)

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        connection = _Connection(loop, self.read_timeout)
        self._slots.add(connection)
        self._live.add(connection)
        connection.closed.add_done_callback(lambda _: self._live.discard(connection))
        try:
            await self._dialer.dial(connection)
        except BaseException:
            if connection.transport is None:  # never made: no socket to wait for
                self._live.discard(connection)
            connection.abort()
            self._forget(connection)
            raise
        if self._closed:  # closed while this one connected
            connection.abort()
            self._forget(connection)
            raise ConnectionDropped("the client was closed")
        return connection

    def _release(self, connection: _Connection) -> None:
        if connection.reusable and not self._closed:
            if self._turns.hand(connection):
                return
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.append(connection)
            return
        connection.close()
        self._forget(connection)

    def _forget(self, connection: _Connection) -> None:
        """A connection is gone: its place in the pool goes to the first caller waiting."""
        if connection not in self._slots:
            return
        connection.close()
        self._slots.discard(connection)
        self._turns.pass_turn()


def request_head(
    method: str, target: str, host: str, headers: Mapping[str, str], length: int
) -> bytes:
    """The bytes of a request's head: its line, ``Host``, the headers, ``Content-Length``.

    Raises ``ValueError`` for a control character (a line break would split the request in
    two) or a character Latin-1 cannot carry, in the target, a header's name or its value.
    """
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name != "host"]
    lines.append(f"Content-Length: {length}\r\n\r\n")
    for line in lines[:-1]:  # one scan per line is cheaper than a check per name and value
        if _CONTROL.search(line):
            raise ValueError(f"a control character in the request: {line[:80]!r}")
    try:
        return "\r\n".join(lines).encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"a character HTTP headers cannot carry: {exc}") from exc


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # all but tab
