"""The lean path's HTTP/1.1 client against servers that misbehave on purpose, on 127.0.0.1.

Each server here is a raw ``asyncio`` server that writes exactly the bytes a test needs (chunked
answers, ``Connection: close``, silence, garbage, a trickle), and counts the connections it
accepts: reuse and the pool's limit are asserted from the server's side.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from aiofanout._lean_aws import _http_connection as http_connection
from aiofanout._lean_aws._connection_pool import ConnectionPool, request_head
from aiofanout._lean_aws._http_connection import ConnectFailed, ConnectionDropped, ReadTimedOut

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


def answer(body: bytes = b"{}", *, headers: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode() + body


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's body (this client always sends Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


class Server:
    """Serves each connection with ``reply`` (called once per request until it returns False)."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0
        self.requests = 0
        self.open = 0
        self.most_open = 0  # connections open at once, at most

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while not reader.at_eof():
                try:
                    keep = await self.reply(reader, writer)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                self.requests += 1
                await writer.drain()
                if not keep:
                    break
        finally:
            self.open -= 1
            writer.close()


@asynccontextmanager
async def serving(
    reply: Reply, *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[Server, str]]:
    server = Server(reply)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield server, f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        listener.close()
        await listener.wait_closed()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(answer(await read_request(reader)))
    return True


def pool_for(
    url: str, *, limit: int = 4, read_timeout: float = 10.0, **kw: object
) -> ConnectionPool:
    return ConnectionPool(url, limit=limit, connect_timeout=10.0, read_timeout=read_timeout, **kw)  # type: ignore[arg-type]


async def post(
    pool: ConnectionPool, body: bytes, host: str = "127.0.0.1"
) -> tuple[int, dict[str, str], bytes]:
    return await pool.request(request_head("POST", "/", host, {}, len(body)), body)


@asynccontextmanager
async def pool_on(
    reply: Reply, *, limit: int = 4, read_timeout: float = 10.0
) -> AsyncIterator[tuple[Server, ConnectionPool]]:
    """A server answering with ``reply``, and a pool to it (closed after)."""
    async with serving(reply) as (server, url):
        pool = pool_for(url, limit=limit, read_timeout=read_timeout)
        try:
            yield server, pool
        finally:
            await pool.close()


async def connections_for_three_calls(reply: Reply) -> int:
    """How many connections the server saw for three calls one after another, each answered."""
    async with pool_on(reply) as (server, pool):
        for i in range(3):
            assert (await post(pool, b"%d" % i))[2] == b"%d" % i
    return server.connections


async def test_requests_one_after_another_reuse_one_connection() -> None:
    async with pool_on(echo) as (server, pool):
        answers = [await post(pool, f"{i}".encode()) for i in range(5)]
    assert [body for _, _, body in answers] == [b"0", b"1", b"2", b"3", b"4"]
    assert server.connections == 1
    assert server.requests == 5


async def test_no_more_connections_than_the_limit_and_every_caller_answered() -> None:
    async def slow_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        body = await read_request(reader)
        await asyncio.sleep(0.01)
        writer.write(answer(body))
        return True

    async with pool_on(slow_echo, limit=3) as (server, pool):
        answers = await asyncio.gather(*(post(pool, f"{i}".encode()) for i in range(30)))
    assert sorted(int(body) for _, _, body in answers) == list(range(30))
    assert server.connections == 3
    assert server.most_open == 3


async def test_a_chunked_answer_and_a_repeated_header_are_read_whole() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\nX-Amzn-RequestId: r1\r\n"
            b"Vary: a\r\nVary: b\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        return True

    async with pool_on(chunked) as (server, pool):
        first = await post(pool, b"x")
        second = await post(pool, b"y")
    status, headers, body = first
    assert (status, body) == (202, b"hello world")
    assert headers["x-amzn-requestid"] == "r1"
    assert headers["vary"] == "a, b"
    assert second == first
    assert server.connections == 1  # the chunked answer ended where it said: the connection kept


async def test_connection_close_in_an_answer_opens_a_new_connection_for_the_next() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(await read_request(reader), headers="Connection: close\r\n"))
        return False

    assert await connections_for_three_calls(once) == 3


async def test_an_idle_connection_the_server_closed_is_not_used_again() -> None:
    async def one_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(await read_request(reader)))
        return False  # closes without saying so: as a server's keep-alive timeout does

    async with pool_on(one_then_close) as (server, pool):
        await post(pool, b"a")
        async with asyncio.timeout(5):  # the close reached the client: wait for that
            await asyncio.gather(*(connection.closed for connection in pool._live))
        assert (await post(pool, b"b"))[2] == b"b"
    assert server.connections == 2


async def test_silence_after_the_request_is_a_read_timeout_and_the_connection_is_dropped() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await read_request(reader)
        await reader.read()  # until the client gives up
        return False

    async with pool_on(silent, read_timeout=0.2) as (server, pool):
        with pytest.raises(ReadTimedOut):
            await post(pool, b"x")
        assert not pool._slots
    assert server.connections == 1


async def test_an_answer_that_keeps_arriving_is_not_timed_out() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n")
        for _ in range(12):  # 1.2 s in all, a byte each 0.1 s: three read timeouts' worth
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.write(b"z")
        return True

    async with pool_on(trickle, read_timeout=0.4) as (_, pool):
        assert (await post(pool, b"x"))[2] == b"z" * 12


async def test_garbage_or_a_cut_answer_is_a_dropped_connection() -> None:
    replies = [b"SMTP ready\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"]

    async def bad(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await read_request(reader)
        writer.write(replies.pop(0))
        return False

    async with pool_on(bad) as (server, pool):
        for _ in range(2):
            with pytest.raises(ConnectionDropped):
                await post(pool, b"x")
    assert server.connections == 2


async def test_a_refused_connection_is_connect_failed() -> None:
    async with serving(echo) as (_, url):
        pass  # the listener is closed again: its port refuses
    pool = pool_for(url)
    with pytest.raises(ConnectFailed):
        await post(pool, b"x")
    await pool.close()


async def test_a_call_cancelled_mid_answer_closes_its_connection_and_the_next_gets_a_new_one() -> (
    None
):
    arrived = asyncio.Event()

    async def hold_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        body = await read_request(reader)
        if body == b"hold":
            arrived.set()
            await reader.read()  # never answers; the client's cancellation closes it
            return False
        writer.write(answer(body))
        return True

    async with pool_on(hold_first, limit=1) as (server, pool):
        held = asyncio.create_task(post(pool, b"hold"))
        await arrived.wait()
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await held
        assert (await post(pool, b"next"))[2] == b"next"  # the one slot is free again
    assert server.connections == 2


async def test_a_connection_handed_to_a_caller_cancelled_meanwhile_goes_to_the_next() -> None:
    async with pool_on(echo, limit=1) as (server, pool):
        held = await pool._acquire()  # the only connection, taken as a call takes it
        waiting = asyncio.create_task(post(pool, b"2"))
        await asyncio.sleep(0)  # it runs: finds the connection taken, and waits its turn
        assert pool._turns
        # Handed over, and the taker cancelled before it could run: the connection must
        # go back to the pool, not leave with the cancelled call.
        pool._release(held)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        async with asyncio.timeout(5):  # a lost connection would leave this one waiting
            assert (await post(pool, b"3"))[2] == b"3"
    assert server.connections == 1


async def test_close_fails_the_callers_waiting_for_a_connection() -> None:
    arrived = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await read_request(reader)
        arrived.set()
        await reader.read()
        return False

    async with serving(hold) as (server, url):
        pool = pool_for(url, limit=1)
        held = asyncio.create_task(post(pool, b"a"))
        waiting = asyncio.create_task(post(pool, b"b"))
        await arrived.wait()
        await pool.close()
        for task in (held, waiting):
            with pytest.raises(ConnectionDropped):
                await task
        with pytest.raises(ConnectionDropped):
            await post(pool, b"c")
    assert server.connections == 1


def test_a_control_character_or_a_wide_one_in_the_head_is_refused() -> None:
    for bad in ({"x-amz-log-type": "Tail\r\nX-Evil: 1"}, {"a\nb": "c"}, {"a": "nul\x00"}):
        with pytest.raises(ValueError, match="control character"):
            request_head("POST", "/", "h", bad, 0)
    with pytest.raises(ValueError, match="control character"):
        request_head("POST", "/a b HTTP/1.1\r\nX: y", "h", {}, 0)
    with pytest.raises(ValueError, match="cannot carry"):
        request_head("POST", "/", "h", {"x-amz-invocation-type": "Event\u2603"}, 0)
    assert b"\tb" in request_head("POST", "/", "h", {"a": "\tb"}, 0)  # a tab is allowed
    head = request_head("POST", "/p?q=1", "h:1", {"host": "ignored", "a": "b"}, 3)
    assert head == b"POST /p?q=1 HTTP/1.1\r\nHost: h:1\r\na: b\r\nContent-Length: 3\r\n\r\n"


async def test_tls_is_verified_against_the_given_authority(tmp_path: Path) -> None:
    authority, server_tls = certificate_authority(tmp_path)
    async with serving(echo, tls=server_tls) as (_, url):
        trusting = pool_for(url, ssl_context=ssl.create_default_context(cafile=str(authority)))
        default = pool_for(url)  # the system's authorities: they never signed this certificate
        try:
            assert (await post(trusting, b"secret"))[2] == b"secret"
            with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
                await post(default, b"secret")
        finally:
            await trusting.close()
            await default.close()


def certificate_authority(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA's certificate file, and a server context with a certificate it signed for 127.0.0.1."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aiofanout test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (authority := directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (chain := directory / "server.pem").write_bytes(leaf.public_bytes(pem))
    (secret := directory / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(chain, secret)
    return authority, server


async def test_an_idle_connection_past_its_keepalive_is_not_used_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_connection, "KEEPALIVE", 0.0)  # every idle connection is too old
    assert await connections_for_three_calls(echo) == 3


async def test_an_https_endpoint_is_checked_against_botocores_ca_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import EndpointConnectionError

    from aiofanout._lean_aws import LeanClient, resolve_endpoint
    from aiofanout.testing import FAKE_CREDENTIALS

    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    authority, server_tls = certificate_authority(tmp_path)

    async def call(url: str) -> bytes:
        where = resolve_endpoint("sqs", endpoint_url=url, region_name="us-east-1")
        async with LeanClient(where, pool=2, read_timeout=10, connect_timeout=10) as client:
            return (await client.call("SendMessage", "POST", "/", {}, b'{"a":1}'))[2]

    async with serving(echo, tls=server_tls) as (_, url):
        with pytest.raises(EndpointConnectionError) as refused:
            await call(url)  # botocore's own bundle (certifi's) never signed it
        assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value.kwargs["error"])
        monkeypatch.setenv("AWS_CA_BUNDLE", str(authority))
        assert await call(url) == b'{"a":1}'


@pytest.mark.parametrize(
    ("environment", "endpoint_url", "lean"),
    [
        ({}, None, True),
        ({"HTTPS_PROXY": "http://127.0.0.1:3128"}, None, False),
        ({"HTTPS_PROXY": "http://127.0.0.1:3128"}, "http://127.0.0.1:4566", True),  # http only
        ({"ALL_PROXY": "http://127.0.0.1:3128"}, "http://127.0.0.1:4566", False),
        (
            {"HTTP_PROXY": "http://127.0.0.1:3128", "NO_PROXY": "127.0.0.1"},
            "http://127.0.0.1:1",
            True,
        ),
        ({"HTTPS_PROXY": "http://127.0.0.1:3128", "NO_PROXY": ".amazonaws.com"}, None, True),
        ({"AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:1", "HTTP_PROXY": "http://p:1"}, None, False),
    ],
)
def test_an_endpoint_behind_a_proxy_takes_the_aioboto3_path(
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    endpoint_url: str | None,
    lean: bool,
) -> None:
    from aiofanout._lean_aws import lean_path_on

    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "AWS_ENDPOINT_URL_SQS"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert lean_path_on("sqs", endpoint_url) is lean


def test_without_httptools_the_aioboto3_path_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    import aiofanout._lean_aws as lean

    assert lean.lean_path_on("lambda")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "httptools" else real(name, *a),
    )
    lean._parser_installed.cache_clear()
    try:
        assert not lean.lean_path_on("lambda")
    finally:
        monkeypatch.undo()
        lean._parser_installed.cache_clear()


async def test_bytes_beyond_the_one_answer_drop_the_connection_and_the_next_call_is_right() -> None:
    async def stray(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        body = await read_request(reader)
        # The answer, then the start of another nobody asked for, in one write.
        writer.write(answer(body) + b"HTTP/1.1 200 OK\r\nX-Stale: 1\r\nContent-Len")
        return True

    async with pool_on(stray) as (server, pool):
        assert (await post(pool, b"first"))[2] == b"first"
        status, headers, body = await post(pool, b"second")
    assert (status, body) == (200, b"second")
    assert "x-stale" not in headers
    assert server.connections == 2


async def test_an_answer_that_ends_with_its_connection_is_read_whole() -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nwhole body")
        return False

    async with pool_on(until_close) as (_, pool):
        assert (await post(pool, b"x"))[2] == b"whole body"


async def test_a_failed_calls_own_retry_does_not_take_the_turn_of_one_waiting() -> None:
    async def fail_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        body = await read_request(reader)
        if body == b"fail":
            return False  # closes without an answer
        writer.write(answer(body))
        return True

    async with serving(fail_first) as (server, url):
        pool = pool_for(url, limit=1)

        async def fail_then_retry() -> bytes:
            with pytest.raises(ConnectionDropped):
                await post(pool, b"fail")
            return (await post(pool, b"retry"))[2]  # at once, in the step that freed the slot

        try:
            first = asyncio.create_task(fail_then_retry())
            await asyncio.sleep(0)
            waiting = asyncio.create_task(post(pool, b"waiting"))
            assert await first == b"retry"
            assert (await waiting)[2] == b"waiting"
        finally:
            await pool.close()
    assert server.most_open == 1  # never two connections at once under a limit of one


async def test_close_stops_a_connect_under_way() -> None:
    entered = asyncio.Event()
    never = asyncio.Event()

    async def stuck_connect(*args: object, **kwargs: object) -> object:
        entered.set()
        await never.wait()  # a connect that never completes (a host that drops the SYN)
        raise AssertionError("unreachable")

    pool = pool_for("http://127.0.0.1:9")
    loop = asyncio.get_running_loop()
    real = loop.create_connection
    loop.create_connection = stuck_connect  # type: ignore[method-assign,assignment]
    try:
        call = asyncio.create_task(post(pool, b"x"))
        await entered.wait()
        async with asyncio.timeout(5):  # not the connect timeout (10 s) : close stops it
            await pool.close()
        with pytest.raises(ConnectionDropped, match="closed"):
            await call
    finally:
        loop.create_connection = real  # type: ignore[method-assign]
    assert not pool._slots
    assert not pool._live


async def test_a_header_the_lean_client_cannot_send_is_botocores_parameter_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from botocore.exceptions import ParamValidationError

    from aiofanout._lean_aws import LeanClient, LeanLambda, resolve_endpoint
    from aiofanout.testing import FAKE_CREDENTIALS

    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    async with serving(echo) as (server, url):
        where = resolve_endpoint("lambda", endpoint_url=url, region_name="us-east-1")
        client = LeanLambda(LeanClient(where, pool=2, read_timeout=10, connect_timeout=10))
        async with client:
            for bad in ("Event\r\nX-Evil: 1", "Event\u2603"):
                with pytest.raises(ParamValidationError):
                    await client.invoke(FunctionName="f", Payload=b"{}", InvocationType=bad)
            answered = await client.invoke(FunctionName="f", Payload=b"{}")
    assert answered["StatusCode"] == 200
    assert server.requests == 1  # the refused ones were never sent


async def test_a_turn_passed_just_before_close_sends_nothing() -> None:
    async with serving(echo) as (server, url):
        pool = pool_for(url, limit=1)
        held = await pool._acquire()
        waiting = asyncio.create_task(post(pool, b"after close"))
        await asyncio.sleep(0)  # it waits its turn
        held.abort()
        pool._release(held)  # a broken connection: its place goes to the one waiting...
        await pool.close()  # ...and the client closes before that one runs
        with pytest.raises(ConnectionDropped, match="closed"):
            await waiting
    assert server.requests == 0
