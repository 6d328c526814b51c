"""An S3 object of JSON lines or CSV rows as a resumable source, read lazily by byte range.

An orchestrator that continues in another invocation must pick its input up where it stopped,
without reading again what it already dispatched, and without holding a large object in memory.
Lines make that possible: an item's position is the byte offset where its line starts, so a
later invocation asks S3 for ``bytes=offset-...`` and reads on. The object is fetched
``chunk_bytes`` at a time with ranged ``GetObject`` calls; a line cut by a chunk's end is carried
into the next one, so at most a partial line and one chunk are held (about two chunks, unless a
single line is longer than a chunk: a line is always held whole).

Offsets only mean something for the object they were taken from. The first answer's ETag goes
into every position, and every later GET, in this invocation or the next, carries it as
``IfMatch``: a replaced object fails with HTTP 412 and the read stops with a
:class:`UsageError` instead of silently mixing two inputs.

CSV is read line by line too, which a quoted field with a newline inside defeats: such a row is
refused (its line leaves a quote open, or does not have the header's number of fields) rather
than read wrongly.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Literal

from .._aws import aws_session, from_client_error, translate_botocore_errors
from .._errors import FanoutError, NotFound, UsageError
from ._sources import Position, SourceItem

__all__ = ["S3Lines"]

FORMATS = ("jsonl", "csv")

#: Turns one non-blank line (its bytes, its item index, its byte offset) into an item.
Decoder = Callable[[bytes, int, int], Any]


class S3Lines:
    """An S3 object of JSON lines or CSV rows, read lazily by byte range from any item's position.

    ``format="jsonl"``: one JSON value per line. ``format="csv"``: the first line is the header,
    each row becomes a ``dict[str, str]`` (the csv module's default dialect; a quoted field may
    hold commas and quotes, but not a newline). Blank lines are not items; CRLF line endings are
    fine. Each item's position, ``{"index", "offset", "etag"}``, reads that item again first;
    if the object changed since the position was taken, reading fails with :class:`UsageError`.
    A missing object raises :class:`NotFound`. Needs ``pip install 'aiofanout[aws]'``.

    Example::

        source = S3Lines("inputs", "2026/11/items.jsonl")
        async for entry in source.read(source.start()):
            await handle(entry.index, entry.item)
            cursor = entry.position  # store it: source.read(cursor) resumes at this item
    """

    def __init__(
        self,
        bucket: str,
        key: str,
        *,
        format: Literal["jsonl", "csv"] = "jsonl",
        chunk_bytes: int = 1 << 20,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        session: Any = None,
    ) -> None:
        if not bucket or not key:
            raise UsageError("S3Lines needs a bucket and a key")
        if format not in FORMATS:
            raise UsageError(f"S3Lines format must be one of {FORMATS}, not {format!r}")
        if not isinstance(chunk_bytes, int) or chunk_bytes < 1:
            raise UsageError(f"chunk_bytes must be a positive number of bytes, not {chunk_bytes!r}")
        self.bucket = bucket
        self.key = key
        self.format = format
        self.chunk_bytes = chunk_bytes
        self.endpoint_url = endpoint_url
        self.region_name = region_name
        self.session = session

    @property
    def url(self) -> str:
        """The object as ``s3://bucket/key``, as errors name it."""
        return f"s3://{self.bucket}/{self.key}"

    def __repr__(self) -> str:
        return f"S3Lines({self.url!r}, format={self.format!r}, chunk_bytes={self.chunk_bytes})"

    def start(self) -> Position:
        """The position of the first item: offset 0, with no I/O.

        For CSV, offset 0 is the header line: :meth:`read` takes the field names from it and
        yields the first row, whose own position has the offset just after the header.
        """
        return {"index": 0, "offset": 0}

    async def read(self, position: Position) -> AsyncGenerator[SourceItem, None]:
        """The items from ``position`` (included) to the end, a chunk of bytes at a time.

        One S3 client per call, closed when the iteration ends, fails or is closed early.
        """
        index, offset, etag = self._parse(position)
        async with self._client() as s3:
            ranges = _RangeReader(s3, self.bucket, self.key, self.chunk_bytes, etag)
            async with contextlib.aclosing(ranges.lines(offset)) as lines:
                decode = await self._decoder(ranges, lines, offset)
                async for line_offset, line in lines:
                    if not line.strip():
                        continue
                    item = decode(line, index, line_offset)
                    where = {"index": index, "offset": line_offset, "etag": ranges.etag}
                    yield SourceItem(index, where, item)
                    index += 1

    async def _decoder(
        self, ranges: _RangeReader, lines: AsyncIterator[tuple[int, bytes]], offset: int
    ) -> Decoder:
        if self.format == "jsonl":
            return self._json_item
        if offset > 0:
            return _CsvRows(self.url, await ranges.first_line()).row
        try:  # the header is the first line of this very read
            _, header = await anext(lines)
        except StopAsyncIteration:  # an empty object: no header, and no rows to decode
            header = None
        return _CsvRows(self.url, header).row

    def _json_item(self, line: bytes, index: int, offset: int) -> Any:
        try:
            return json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            reason = "not UTF-8"
        except json.JSONDecodeError as exc:
            reason = f"{exc.msg} at column {exc.colno}"
        # Not chained: the parser's exception holds the line, and items may be private.
        raise UsageError(
            f"{self.url}: line {index} (0-based, blank lines not counted) at byte offset "
            f"{offset} is not JSON ({reason})"
        )

    def _parse(self, position: Position) -> tuple[int, int, str | None]:
        try:
            index, offset = int(position["index"]), int(position.get("offset", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"not a position in {self.url}: {position!r}") from exc
        etag = position.get("etag")
        if index < 0 or offset < 0 or not isinstance(etag, str | None):
            raise UsageError(f"not a position in {self.url}: {position!r}")
        return index, offset, etag

    def _client(self) -> Any:
        session = aws_session(self.session, "S3Lines sources")
        return session.client("s3", endpoint_url=self.endpoint_url, region_name=self.region_name)


class _RangeReader:
    """Ranged GETs of one object, pinned to its first ETag, and the lines they hold."""

    def __init__(self, s3: Any, bucket: str, key: str, chunk_bytes: int, etag: str | None) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.key = key
        self.chunk_bytes = chunk_bytes
        #: The object's ETag: from the position, else from the first answer.
        self.etag = etag

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    async def lines(self, offset: int) -> AsyncGenerator[tuple[int, bytes], None]:
        """(byte offset, line without its ending) from ``offset`` to the end of the object."""
        pending, base = bytearray(), offset  # base: the object offset of pending[0]
        async for chunk in self.chunks(offset):
            scan, start = len(pending), 0  # what was pending holds no newline
            pending += chunk
            while (end := pending.find(b"\n", scan)) >= 0:
                yield base + start, _line(bytes(pending[start:end]), base + start)
                start = scan = end + 1
            # Drop the yielded lines once per chunk, not once per line (that would copy the
            # rest of the chunk for every line).
            del pending[:start]
            base += start
        if pending:
            yield base, _line(bytes(pending), base)

    async def first_line(self) -> bytes | None:
        """The object's first line (the CSV header), fetched a chunk at a time; None if empty."""
        async with contextlib.aclosing(self.lines(0)) as lines:
            async for _, line in lines:
                return line
        return None

    async def chunks(self, offset: int) -> AsyncIterator[bytes]:
        """The object's bytes from ``offset`` on, ``chunk_bytes`` per GET."""
        while (answer := await self._fetch(offset)) is not None:
            data, size = answer
            yield data
            offset += len(data)
            if not data or offset >= size:
                return

    async def _fetch(self, offset: int) -> tuple[bytes, int] | None:
        """One chunk from ``offset`` and the object's size; None past the end (HTTP 416)."""
        from botocore.exceptions import ClientError

        request = {
            "Bucket": self.bucket,
            "Key": self.key,
            "Range": f"bytes={offset}-{offset + self.chunk_bytes - 1}",
        }
        if self.etag is not None:
            request["IfMatch"] = self.etag
        with translate_botocore_errors():
            try:
                response = await self.s3.get_object(**request)
                async with response["Body"] as body:
                    data: bytes = await body.read()
            except ClientError as exc:
                if _code(exc) == "InvalidRange":  # the offset is the end (or the object is empty)
                    return None
                raise self._error(exc) from exc
        if self.etag is None:
            self.etag = str(response["ETag"])
        return data, self._size(response)

    def _size(self, response: dict[str, Any]) -> int:
        content_range = str(response.get("ContentRange") or "")  # "bytes 0-99/12345"
        size = content_range.rpartition("/")[2]
        if not size.isdigit():
            raise UsageError(
                f"{self.url}: the endpoint answered a ranged GET without a Content-Range; "
                "S3Lines needs an S3 API that serves byte ranges"
            )
        return int(size)

    def _error(self, exc: Any) -> FanoutError | UsageError:
        code = _code(exc)
        if code in ("NoSuchKey", "NoSuchBucket", "404"):
            return NotFound(f"the input object {self.url} does not exist ({code})", code=code)
        if code in ("PreconditionFailed", "412"):
            return UsageError(
                f"the input object {self.url} changed since the run started; its ETag is no "
                f"longer {self.etag}, so the saved positions point into another object. Put "
                "the original back, or start a new run over the new object"
            )
        return from_client_error(exc)


class _CsvRows:
    """CSV rows of one line each, as dicts keyed by the header's field names."""

    def __init__(self, url: str, header: bytes | None) -> None:
        self.url = url
        self.fieldnames: list[str] = []
        if header is None:  # an empty object
            return
        fields = self._fields(header, "the header")
        if not header.strip() or len(set(fields)) != len(fields):
            raise UsageError(f"{url}: the first line must be a CSV header of distinct names")
        self.fieldnames = fields

    def row(self, line: bytes, index: int, offset: int) -> dict[str, str]:
        """The row ``line`` holds, refused unless it has exactly the header's fields."""
        where = f"row {index} (0-based, at byte offset {offset})"
        fields = self._fields(line, where)
        if len(fields) != len(self.fieldnames):
            raise UsageError(
                f"{self.url}: {where} has {len(fields)} fields, the header "
                f"{len(self.fieldnames)}; a quoted field with a newline inside splits a row "
                "over two lines, which a line-by-line reader cannot join"
            )
        return dict(zip(self.fieldnames, fields, strict=True))

    def _fields(self, line: bytes, where: str) -> list[str]:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"{self.url}: {where} is not UTF-8") from None
        # The csv module asks for the next line when a quoted field is still open at the end of
        # this one: hand it a marker line, and see whether it took it.
        source = iter((text, ""))
        try:
            fields = next(csv.reader(source), [])
        except csv.Error as exc:
            raise UsageError(f"{self.url}: {where} is not valid CSV ({exc})") from None
        if next(source, None) is None:
            raise UsageError(
                f"{self.url}: {where} leaves a quoted field open: a quoted field with a newline "
                "inside cannot be read line by line (by byte range). Remove the newlines from "
                "fields, or store the input as JSON lines"
            )
        return fields


def _line(line: bytes, offset: int) -> bytes:
    """A line without the CR of a CRLF ending and, at the object's start, a UTF-8 BOM."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if offset == 0 and line.startswith(codecs.BOM_UTF8):
        line = line[len(codecs.BOM_UTF8) :]
    return line


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
