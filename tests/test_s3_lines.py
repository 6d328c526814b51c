"""S3Lines: JSON lines and CSV rows read from a real moto server by byte range, resumable.

Chunks are tiny here (64 or 100 bytes) so that lines cross chunk boundaries all the time. A
session wrapper counts the bytes each read fetches and the clients it leaves open.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from aiofanout import UsageError
from aiofanout.durable import S3Lines
from aiofanout.errors import NotFound
from aiofanout.testing import MotoServer


class CountingSession:
    """An aioboto3 session that counts GetObject bytes and the S3 clients still open."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fetched = 0
        self.gets = 0
        self.ranges: list[str] = []
        self.opened = 0
        self.open = 0

    def client(self, *args: Any, **kwargs: Any) -> Any:
        return _CountedClient(self, self.inner.client(*args, **kwargs))

    def count(self, parsed: dict[str, Any], **_: Any) -> None:
        self.gets += 1
        self.fetched += int(parsed.get("ContentLength") or 0)

    def note_range(self, params: dict[str, Any], **_: Any) -> None:
        self.ranges.append(str(params.get("Range")))


class _CountedClient:
    def __init__(self, session: CountingSession, creator: Any) -> None:
        self.session = session
        self.creator = creator

    async def __aenter__(self) -> Any:
        client = await self.creator.__aenter__()
        client.meta.events.register("after-call.s3.GetObject", self.session.count)
        client.meta.events.register("provide-client-params.s3.GetObject", self.session.note_range)
        self.session.opened += 1
        self.session.open += 1
        return client

    async def __aexit__(self, *exc_info: Any) -> Any:
        self.session.open -= 1
        return await self.creator.__aexit__(*exc_info)


@pytest.fixture
async def s3(moto: MotoServer, aioboto3_session: Any) -> AsyncIterator[Any]:
    async with aioboto3_session.client("s3", endpoint_url=moto.endpoint_url) as client:
        yield client


@pytest.fixture
async def bucket(s3: Any) -> str:
    name = f"lines-{uuid.uuid4().hex[:12]}"
    await s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def counting(aioboto3_session: Any) -> CountingSession:
    return CountingSession(aioboto3_session)


def lines_of(moto: MotoServer, session: Any, bucket: str, key: str, **options: Any) -> S3Lines:
    return S3Lines(bucket, key, endpoint_url=moto.endpoint_url, session=session, **options)


async def collect(source: Any, position: dict[str, Any], limit: int | None = None) -> list[Any]:
    """The items read from ``position`` (the first ``limit``), the iterator closed after."""
    taken: list[Any] = []
    async with contextlib.aclosing(source.read(position)) as items:
        async for entry in items:
            taken.append(entry)
            if len(taken) == limit:
                break
    return taken


async def read_into(
    source: Any,
    taken: list[Any],
    each: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Read ``source`` from its start, keeping each item in ``taken`` (up to an error)."""
    async for entry in source.read(source.start()):
        if each is not None:
            await each()
        taken.append(entry.item)


async def etag_of(s3: Any, bucket: str, key: str) -> str:
    return str((await s3.head_object(Bucket=bucket, Key=key))["ETag"])


def jsonl_object(count: int, seed: int = 7) -> tuple[bytes, list[Any]]:
    """``count`` JSON values of varied length (some longer than a chunk), blank lines and CRLF."""
    rng = random.Random(seed)
    values: list[Any] = []
    parts: list[str] = []
    for i in range(count):
        # Mostly short lines, a few longer than a chunk; multi-byte characters cut by chunks.
        value = {"i": i, "t": "é" * rng.choice([0, 1, 2, 3, 5, 8, 60])}
        values.append(value)
        parts.append(json.dumps(value, ensure_ascii=False) + rng.choice(["\n", "\r\n"]))
        if i % 97 == 0:
            parts.append(rng.choice(["\n", "\r\n", "   \n"]))
    return "".join(parts).encode(), values


def csv_object(count: int) -> tuple[bytes, list[dict[str, str]]]:
    """A header and ``count`` rows with quoted commas and quotes; CRLF endings (csv's default)."""
    rows = [
        {"id": str(i), "name": f'Smith, "J{i}"', "note": "x" * (i % 90 // 10)} for i in range(count)
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["id", "name", "note"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode(), rows


# -- everything, in order, and back from any position ----------------------------------------------


@pytest.mark.slow
async def test_jsonl_items_come_back_in_order_with_their_line_offsets(
    moto: MotoServer, s3: Any, bucket: str, counting: CountingSession
) -> None:
    data, values = jsonl_object(2000)
    await s3.put_object(Bucket=bucket, Key="in.jsonl", Body=data)
    etag = await etag_of(s3, bucket, "in.jsonl")
    source = lines_of(moto, counting, bucket, "in.jsonl", chunk_bytes=64)

    items = await collect(source, source.start())

    assert [entry.item for entry in items] == values
    assert [entry.index for entry in items] == list(range(2000))
    assert [entry.position["index"] for entry in items] == list(range(2000))
    for entry in items:
        line = json.dumps(entry.item, ensure_ascii=False).encode()
        assert data[entry.position["offset"] :].startswith(line)
        assert entry.position["etag"] == etag
    assert counting.gets >= len(data) // 64  # many chunks: lines crossed their boundaries
    assert counting.fetched == len(data)  # every byte fetched once
    assert counting.open == 0


@pytest.mark.slow
async def test_every_position_read_again_yields_its_item_then_the_rest(
    moto: MotoServer, s3: Any, bucket: str, counting: CountingSession
) -> None:
    data, values = jsonl_object(2000, seed=11)
    await s3.put_object(Bucket=bucket, Key="in.jsonl", Body=data)
    # Positions taken by a reader of wide chunks, resumed by one of 64 bytes (and back below):
    # offsets are bytes of the object, not of a chunking.
    wide = lines_of(moto, counting, bucket, "in.jsonl", chunk_bytes=4096)
    source = lines_of(moto, counting, bucket, "in.jsonl", chunk_bytes=64)
    items = await collect(wide, wide.start())
    assert len(items) == 2000

    for index in (0, 1, 97, 98, 1234, 1990, 1999):  # the item, then the next ones
        again = await collect(source, items[index].position, limit=12)
        assert [entry.item for entry in again] == values[index : index + 12]
        assert [entry.index for entry in again] == list(range(index, min(index + 12, 2000)))
        assert [entry.position for entry in again] == [e.position for e in items[index:][:12]]
    for index in (1800, 1999):  # the item, then all the rest
        assert [e.item for e in await collect(source, items[index].position)] == values[index:]
    narrow = await collect(source, items[1700].position)
    assert [e.item for e in await collect(wide, narrow[10].position)] == values[1710:]

    end = {"index": 2000, "offset": len(data), "etag": items[0].position["etag"]}
    assert await collect(source, end) == []
    assert counting.open == 0


@pytest.mark.slow
async def test_csv_rows_are_dicts_and_resume_knowing_the_header(
    moto: MotoServer, s3: Any, bucket: str, counting: CountingSession
) -> None:
    data, rows = csv_object(2000)
    await s3.put_object(Bucket=bucket, Key="in.csv", Body=data)
    source = lines_of(moto, counting, bucket, "in.csv", format="csv", chunk_bytes=100)

    items = await collect(source, source.start())

    assert [entry.item for entry in items] == rows
    assert items[0].item == {"id": "0", "name": 'Smith, "J0"', "note": ""}  # quoted comma, quotes
    assert items[0].position["offset"] == len(b"id,name,note\r\n")
    for index in (0, 1, 999, 1999):
        again = await collect(source, items[index].position, limit=12)
        assert [entry.item for entry in again] == rows[index : index + 12]
        assert [entry.position for entry in again] == [e.position for e in items[index:][:12]]
    assert [e.item for e in await collect(source, items[1900].position)] == rows[1900:]
    end = {"index": 2000, "offset": len(data), "etag": items[0].position["etag"]}
    assert await collect(source, end) == []
    assert counting.open == 0


# -- by range, never the whole object --------------------------------------------------------------


async def test_reading_a_few_items_fetches_a_few_lines_and_a_chunk(
    moto: MotoServer, s3: Any, bucket: str, counting: CountingSession
) -> None:
    data, values = jsonl_object(20_000, seed=3)
    assert len(data) > 500_000
    await s3.put_object(Bucket=bucket, Key="big.jsonl", Body=data)
    chunk = 4096
    source = lines_of(moto, counting, bucket, "big.jsonl", chunk_bytes=chunk)

    first = await collect(source, source.start(), limit=10)
    assert [entry.item for entry in first] == values[:10]
    assert counting.fetched <= first[-1].position["offset"] + 2 * chunk
    for sent in counting.ranges:  # every GET asked for one chunk, never the whole object
        begin, end = map(int, sent.removeprefix("bytes=").split("-"))
        assert end - begin + 1 == chunk

    wide = lines_of(moto, counting, bucket, "big.jsonl", chunk_bytes=1 << 16)
    position = (await collect(wide, wide.start()))[12_000].position
    counting.fetched = 0
    resumed = await collect(source, position, limit=10)
    assert [entry.item for entry in resumed] == values[12_000:12_010]
    span = resumed[-1].position["offset"] - resumed[0].position["offset"]
    assert counting.fetched <= span + 2 * chunk
    assert counting.open == 0


@pytest.mark.slow
async def test_a_csv_resumed_mid_object_fetches_the_header_and_its_rows_only(
    moto: MotoServer, s3: Any, bucket: str, counting: CountingSession
) -> None:
    data, rows = csv_object(5000)
    await s3.put_object(Bucket=bucket, Key="big.csv", Body=data)
    source = lines_of(moto, counting, bucket, "big.csv", format="csv", chunk_bytes=1000)
    position = (await collect(source, source.start()))[4000].position

    counting.fetched = 0
    resumed = await collect(source, position, limit=3)

    assert [entry.item for entry in resumed] == rows[4000:4003]
    assert counting.fetched <= 3 * 1000  # one chunk for the header, about one for the rows
    assert counting.open == 0


# -- what lines may hold ---------------------------------------------------------------------------


async def test_blank_lines_and_crlf_are_not_items(
    moto: MotoServer, s3: Any, bucket: str, counting: CountingSession
) -> None:
    body = b'\r\n{"a": 1}\r\n\r\n  \t \n[2]\r\n\n"three"'  # and no newline at the end
    await s3.put_object(Bucket=bucket, Key="blank.jsonl", Body=body)
    source = lines_of(moto, counting, bucket, "blank.jsonl", chunk_bytes=5)

    items = await collect(source, source.start())

    assert [(entry.index, entry.item) for entry in items] == [(0, {"a": 1}), (1, [2]), (2, "three")]
    starts = [body.index(b'{"a"'), body.index(b"[2]"), body.index(b'"three"')]
    assert [entry.position["offset"] for entry in items] == starts


async def test_a_line_that_is_not_json_is_named_by_index_and_offset_not_content(
    moto: MotoServer, s3: Any, bucket: str, counting: CountingSession
) -> None:
    body = b'{"ok": 1}\n\n{"ok": 2}\n{"card": "4111-secret-number"\n{"ok": 3}\n'
    await s3.put_object(Bucket=bucket, Key="bad.jsonl", Body=body)
    source = lines_of(moto, counting, bucket, "bad.jsonl", chunk_bytes=16)

    taken: list[Any] = []
    with pytest.raises(UsageError) as caught:
        await read_into(source, taken)

    assert taken == [{"ok": 1}, {"ok": 2}]
    message = str(caught.value)
    assert f"s3://{bucket}/bad.jsonl" in message
    assert "line 2 " in message
    bad_offset = body.index(b'{"card')
    assert f"byte offset {bad_offset}" in message
    assert "secret" not in message
    assert caught.value.__cause__ is None  # the parser's exception holds the line: not chained
    assert counting.open == 0  # the error closed the client


async def test_a_csv_row_with_a_quoted_newline_is_refused(
    moto: MotoServer, s3: Any, bucket: str, counting: CountingSession
) -> None:
    body = b'id,text,n\n1,"plain, with a comma",1\n2,"two\nlines",2\n3,after,3\n'
    await s3.put_object(Bucket=bucket, Key="newline.csv", Body=body)
    source = lines_of(moto, counting, bucket, "newline.csv", format="csv", chunk_bytes=8)

    taken: list[Any] = []
    with pytest.raises(UsageError, match="quoted field open") as caught:
        await read_into(source, taken)
    assert taken == [{"id": "1", "text": "plain, with a comma", "n": "1"}]
    assert "row 1 " in str(caught.value)

    # Resumed at the second half of the split row: its fields do not match the header.
    second_half = {"index": 2, "offset": body.index(b'lines"')}
    with pytest.raises(UsageError, match="has 2 fields, the header 3"):
        await collect(source, second_half)
    assert counting.open == 0


async def test_csv_quoted_commas_and_quotes_parse_as_the_csv_module_does(
    moto: MotoServer, s3: Any, bucket: str, counting: CountingSession
) -> None:
    body = b'name,quote\r\n"Doe, Jane","She said ""hi"", twice"\r\nplain,""\r\n'
    await s3.put_object(Bucket=bucket, Key="commas.csv", Body=body)
    source = lines_of(moto, counting, bucket, "commas.csv", format="csv", chunk_bytes=7)

    items = [entry.item for entry in await collect(source, source.start())]

    assert items == list(csv.DictReader(io.StringIO(body.decode())))
    assert items == [
        {"name": "Doe, Jane", "quote": 'She said "hi", twice'},
        {"name": "plain", "quote": ""},
    ]


# -- the object must stay the same, and exist ------------------------------------------------------


async def test_an_object_replaced_between_two_reads_is_refused(
    moto: MotoServer, s3: Any, bucket: str, counting: CountingSession
) -> None:
    data, _ = jsonl_object(200)
    await s3.put_object(Bucket=bucket, Key="moving.jsonl", Body=data)
    source = lines_of(moto, counting, bucket, "moving.jsonl", chunk_bytes=64)
    saved = (await collect(source, source.start(), limit=50))[-1].position

    replacement, _ = jsonl_object(200, seed=99)
    await s3.put_object(Bucket=bucket, Key="moving.jsonl", Body=replacement)

    with pytest.raises(UsageError, match="changed since the run started") as caught:
        await collect(source, saved)
    assert f"s3://{bucket}/moving.jsonl" in str(caught.value)
    assert counting.open == 0


async def test_an_object_replaced_during_a_read_is_refused_at_the_next_chunk(
    moto: MotoServer, s3: Any, bucket: str, counting: CountingSession
) -> None:
    data, values = jsonl_object(200)
    await s3.put_object(Bucket=bucket, Key="moving.jsonl", Body=data)
    source = lines_of(moto, counting, bucket, "moving.jsonl", chunk_bytes=64)

    taken: list[Any] = []

    async def replace_once() -> None:
        if not taken:  # a fresh read: its first GET pinned the ETag
            await s3.put_object(Bucket=bucket, Key="moving.jsonl", Body=b'"new"\n' * 500)

    with pytest.raises(UsageError, match="changed since the run started"):
        await read_into(source, taken, replace_once)
    assert taken == values[: len(taken)]
    assert len(taken) < 10
    assert counting.open == 0


async def test_a_missing_object_or_bucket_is_not_found(
    moto: MotoServer, bucket: str, counting: CountingSession
) -> None:
    source = lines_of(moto, counting, bucket, "nothing/here.jsonl")
    with pytest.raises(NotFound, match=f"s3://{bucket}/nothing/here.jsonl"):
        await collect(source, source.start())

    no_bucket = f"missing-{uuid.uuid4().hex[:8]}"
    source = lines_of(moto, counting, no_bucket, "in.csv", format="csv")
    with pytest.raises(NotFound, match=f"s3://{no_bucket}/in.csv"):
        await collect(source, {"index": 4, "offset": 120})
    assert counting.open == 0


async def test_an_empty_object_has_no_items(
    moto: MotoServer, s3: Any, bucket: str, counting: CountingSession
) -> None:
    await s3.put_object(Bucket=bucket, Key="empty.jsonl", Body=b"")
    await s3.put_object(Bucket=bucket, Key="empty.csv", Body=b"")
    for key, form in (("empty.jsonl", "jsonl"), ("empty.csv", "csv")):
        source = lines_of(moto, counting, bucket, key, format=form)
        assert await collect(source, source.start()) == []


# -- the client ------------------------------------------------------------------------------------


async def test_an_early_aclose_closes_the_client(
    moto: MotoServer, s3: Any, bucket: str, counting: CountingSession
) -> None:
    data, values = jsonl_object(500)
    await s3.put_object(Bucket=bucket, Key="in.jsonl", Body=data)
    source = lines_of(moto, counting, bucket, "in.jsonl", chunk_bytes=64)

    items = source.read(source.start())
    assert (await anext(items)).item == values[0]
    assert (await anext(items)).item == values[1]
    assert counting.open == 1
    await items.aclose()

    assert counting.open == 0
    assert counting.opened == 1  # one client for the whole read


async def test_wrong_arguments_and_positions_are_usage_errors(moto: MotoServer) -> None:
    with pytest.raises(UsageError, match="format"):
        S3Lines("b", "k", format="xml")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="chunk_bytes"):
        S3Lines("b", "k", chunk_bytes=0)
    with pytest.raises(UsageError, match="bucket and a key"):
        S3Lines("", "k")
    source = S3Lines("b", "k", endpoint_url=moto.endpoint_url)
    assert source.start() == {"index": 0, "offset": 0}
    for wrong in ({}, {"index": -1}, {"index": 0, "offset": "x"}, {"index": 0, "etag": 3}):
        with pytest.raises(UsageError, match="not a position"):
            await collect(source, wrong)
