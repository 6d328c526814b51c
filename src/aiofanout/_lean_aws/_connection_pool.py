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
One connection and its failures (``TransportError`` kinds, which ``_client`` turns into
botocore's) are ``_http_connection``'s; here is the pool, its dialer and the request's head.
"""

from __future__ import annotations

import asyncio
import collections
import re
import socket
import ssl
from collections.abc import Callable, Mapping

from ._http_connection import (
    Answer,
    ConnectFailed,
    ConnectionDropped,
    ConnectTimedOut,
    HttpConnection,
)

__all__ = ["ConnectionPool", "request_head"]

CLOSE_WAIT = 5.0  # at most, for asyncio to close the aborted sockets at close()


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

    async def dial(self, connection: HttpConnection) -> None:
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

    async def _connect(self, loop: asyncio.AbstractEventLoop, connection: HttpConnection) -> None:
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

    def __init__(self, give_back: Callable[[HttpConnection], None]) -> None:
        self._give_back = give_back  # where a connection handed to a cancelled caller goes
        self._waiting: collections.deque[asyncio.Future[HttpConnection | None]] = (
            collections.deque()
        )
        self.reserved = 0

    def __bool__(self) -> bool:
        return bool(self._waiting)

    async def wait(self, loop: asyncio.AbstractEventLoop) -> HttpConnection | None:
        """Wait for a connection, or for a turn to open one (``None``)."""
        waiter: asyncio.Future[HttpConnection | None] = loop.create_future()
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

    def hand(self, connection: HttpConnection) -> bool:
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

    def _wake(self, handed: HttpConnection | None) -> bool:
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
        self._idle: list[HttpConnection] = []
        self._slots: set[HttpConnection] = set()  # the connections counted against the limit
        self._live: set[HttpConnection] = set()  # every socket not yet closed, counted or not
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

    async def _acquire(self) -> HttpConnection:
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

    async def _open(self, loop: asyncio.AbstractEventLoop) -> HttpConnection:
        connection = HttpConnection(loop, self.read_timeout)
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

    def _release(self, connection: HttpConnection) -> None:
        if connection.reusable and not self._closed:
            if self._turns.hand(connection):
                return
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.append(connection)
            return
        connection.close()
        self._forget(connection)

    def _forget(self, connection: HttpConnection) -> None:
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
