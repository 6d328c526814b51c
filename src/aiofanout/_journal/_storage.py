"""Where a journal keeps its objects: a local directory, or an S3 bucket under a prefix.

A journal needs five things of its store, and nothing else: write an object whole, create one
only if it does not exist yet (the one atomic step runs need: claiming a run id or a
continuation), read one, list the keys under a prefix in order, and close. Objects are written
whole and never appended to, so a reader never sees half a part, on S3 or on disk.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread

from .._aws import aws_session, translate_botocore_errors
from .._errors import FanoutError, JournalError, UsageError

__all__ = ["FileStorage", "S3Storage", "Storage"]


class Storage(Protocol):
    """The objects of a journal, by key (``/``-separated, relative to the journal's root)."""

    #: Where the root is, for messages and manifests: a path or an ``s3://`` URL.
    location: str

    async def put(self, key: str, data: bytes) -> None:
        """Write the object ``key`` whole, replacing what was there."""
        ...

    async def put_new(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist; whether it was written."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The object ``key``, or ``None`` if there is none."""
        ...

    async def keys(self, prefix: str) -> list[str]:
        """The keys under ``prefix``, sorted."""
        ...

    async def folders(self) -> list[str]:
        """The names of the folders at the root, sorted (a journal's runs)."""
        ...

    async def aclose(self) -> None:
        """Release clients (the store can be used again afterwards)."""
        ...


def check_key(key: str, location: str) -> str:
    """``key`` if it stays under the journal's root; :class:`JournalError` if not.

    Keys come from the journal's own files too (a manifest names its result parts): one that
    climbs out (``../x``), is absolute or has empty parts would read or write outside the root.
    """
    parts = key.split("/")
    if not key or key.startswith(("/", "\\")) or any(p in ("", ".", "..") for p in parts):
        raise JournalError(
            f"journal key {key!r} under {location} leaves the journal's root; a journal only "
            "uses keys under its own location: check the run's manifest, or rewrite it"
        )
    return key


class FileStorage:
    """A directory: one file per key, written to a temporary name and renamed into place."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.location = str(self.root) + os.sep  # keys are appended to it in messages

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key, self.location).split("/"))

    def _write(self, key: str, data: bytes, *, new: bool) -> bool:
        path = self._path(key)
        # A journal holds the tasks' values: only its owner reads it (0700 folders, 0600 files).
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        try:
            if not new:
                os.replace(temporary, path)  # atomic: a reader sees the old or the new file
                return True
            try:
                os.link(temporary, path)  # atomic, and fails if the name exists
            except FileExistsError:
                return False
            return True
        finally:
            temporary.unlink(missing_ok=True)

    def _read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def _list(self, prefix: str) -> list[str]:
        directory, _, start = prefix.rpartition("/")
        folder = self._path(directory) if directory else self.root
        if not folder.is_dir():
            return []
        base = f"{directory}/" if directory else ""
        return sorted(
            base + path.name
            for path in folder.iterdir()
            if path.name.startswith(start) and not path.name.startswith(".") and path.is_file()
        )

    async def put(self, key: str, data: bytes) -> None:
        await anyio.to_thread.run_sync(lambda: self._write(key, data, new=False))

    async def put_new(self, key: str, data: bytes) -> bool:
        return await anyio.to_thread.run_sync(lambda: self._write(key, data, new=True))

    async def get(self, key: str) -> bytes | None:
        return await anyio.to_thread.run_sync(self._read, key)

    async def keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` in one directory (journals list one folder at a time)."""
        return await anyio.to_thread.run_sync(self._list, prefix)

    async def folders(self) -> list[str]:
        def listed() -> list[str]:
            if not self.root.is_dir():
                return []
            return sorted(p.name for p in self.root.iterdir() if p.is_dir())

        return await anyio.to_thread.run_sync(listed)

    async def aclose(self) -> None:
        return None


@contextlib.asynccontextmanager
async def _s3_errors(location: str, key: str) -> AsyncIterator[None]:
    """The AWS core's translation, as a :class:`JournalError` naming the object, chained."""
    try:
        with translate_botocore_errors():
            yield
    except FanoutError as exc:
        raise JournalError(
            f"S3 journal at {location}: {key or 'listing'} failed: {exc}; check the bucket "
            "exists, the credentials may read and write it, and the endpoint"
        ) from exc


class S3Storage:
    """Objects of one bucket under a prefix, through one aioboto3 client opened on first use."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        session: Any = None,
    ) -> None:
        if not bucket:
            raise UsageError("S3Journal needs a bucket name")
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.location = f"s3://{bucket}/{self.prefix}"
        self._endpoint_url = endpoint_url
        self._region_name = region_name
        self._session = session
        self._client: Any = None
        self._exit: Any = None

    async def _s3(self) -> Any:
        if self._client is None:
            session = aws_session(self._session, "S3 journals")
            context = session.client(
                "s3", endpoint_url=self._endpoint_url, region_name=self._region_name
            )
            await self._adopt(await context.__aenter__(), context.__aexit__)
        return self._client

    async def _adopt(self, client: Any, exit_: Any) -> None:
        if self._client is None:
            self._client, self._exit = client, exit_
        else:  # another call opened one while this one waited for its own: keep one
            with contextlib.suppress(Exception):  # the spare's trouble is not this call's
                await exit_(None, None, None)

    async def put(self, key: str, data: bytes) -> None:
        s3 = await self._s3()
        async with _s3_errors(self.location, check_key(key, self.location)):
            await s3.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    async def put_new(self, key: str, data: bytes) -> bool:
        async with _s3_errors(self.location, check_key(key, self.location)):
            return await self._put_new(key, data)

    async def _put_new(self, key: str, data: bytes) -> bool:
        s3 = await self._s3()
        try:
            # S3's conditional write: one of two racing writers gets 412 PreconditionFailed.
            await s3.put_object(
                Bucket=self.bucket, Key=self.prefix + key, Body=data, IfNoneMatch="*"
            )
        except s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                return False
            raise
        return True

    async def get(self, key: str) -> bytes | None:
        async with _s3_errors(self.location, check_key(key, self.location)):
            return await self._get(key)

    async def _get(self, key: str) -> bytes | None:
        s3 = await self._s3()
        try:
            response = await s3.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except s3.exceptions.NoSuchKey:
            return None
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data

    async def keys(self, prefix: str) -> list[str]:
        async with _s3_errors(self.location, ""):
            return await self._keys(prefix)

    async def _keys(self, prefix: str) -> list[str]:
        s3 = await self._s3()
        found: list[str] = []
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            found.extend(entry["Key"][len(self.prefix) :] for entry in page.get("Contents", ()))
        return sorted(found)

    async def folders(self) -> list[str]:
        async with _s3_errors(self.location, ""):
            s3 = await self._s3()
            found: list[str] = []
            paginator = s3.get_paginator("list_objects_v2")
            pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix, Delimiter="/")
            async for page in pages:
                for common in page.get("CommonPrefixes", ()):
                    found.append(common["Prefix"][len(self.prefix) :].rstrip("/"))
            return sorted(found)

    async def aclose(self) -> None:
        exit_, self._client, self._exit = self._exit, None, None
        if exit_ is not None:
            await exit_(None, None, None)
