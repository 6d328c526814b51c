"""Function code from the control plane: a zip (inline or in S3 on the moto server), unpacked.

Each upload is unpacked into a private directory of its own (mode 0700) under one temporary
root that the runtime owns and removes when it stops. An older upload's directory stays until
then: environments started from it may still be finishing their invocation. Nothing in the
zip runs here; only its members are written (and the zip itself, which ``GetFunction``'s
``Code.Location`` downloads), and a member that would land outside its
directory (an absolute path, ``..``) is refused. AWS's limits hold: a zip of at most 50 MB
uploaded directly, at most 250 MB unzipped (counted from the members' declared sizes, which
bound what extraction writes, so a zip bomb is refused before a byte is written). What is
refused raises :class:`CodeError`; the control plane answers it in AWS's words. The function
an upload becomes is isolated (``FunctionConfig.isolated``): as on AWS, it sees what the zip
holds and what the Lambda runtime provides, never this process's packages.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread

from .._aws import aioboto3_module
from ._account import REGION

#: AWS's limits: a zip uploaded in the request, and everything a function's code unzips to.
ZIPPED_LIMIT = 50 * 1024 * 1024
UNZIPPED_LIMIT = 250 * 1024 * 1024


class CodeError(Exception):
    """Code that cannot be unpacked: not base64, not a zip, unsafe, too large, not in S3."""


class CodeTooLarge(CodeError):
    """A zip uploaded in the request over :data:`ZIPPED_LIMIT` (``limit`` bytes)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"a zip must be smaller than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Code:
    """An unpacked upload: where it is, and what ``FunctionConfiguration`` reports of it."""

    directory: str
    sha256: str  # base64, as Lambda reports CodeSha256
    size: int
    archive: str | None = None  # the zip as uploaded (Code.Location); None: a directory


class CodeStore:
    """The unpacked code of every function of one runtime, under one private temporary root."""

    def __init__(self, s3_endpoint_url: str | None) -> None:
        self.s3_endpoint_url = s3_endpoint_url
        self._root: Path | None = None

    async def unpack(self, code: dict[str, Any]) -> Code:
        """Unpack a ``Code`` (``ZipFile`` base64, or ``S3Bucket`` and ``S3Key``).

        Raises :class:`CodeTooLarge` for a zip over 50 MB, :class:`CodeError` for any other
        code it refuses.
        """
        if code.get("ZipFile"):
            try:
                data = base64.b64decode(code["ZipFile"], validate=True)
            except (ValueError, TypeError) as exc:
                raise CodeError("ZipFile is not base64") from exc
            if len(data) > ZIPPED_LIMIT:
                raise CodeTooLarge(ZIPPED_LIMIT)
        elif code.get("S3Bucket") and code.get("S3Key"):
            data = await self._from_s3(code["S3Bucket"], code["S3Key"])
        else:
            raise CodeError(
                "Please provide a source for function code (ZipFile or S3Bucket/S3Key)."
            )
        # A 20 MB zip of thousands of files takes seconds to write: off the event loop, which
        # goes on serving the runtime's other invocations meanwhile.
        return await anyio.to_thread.run_sync(self._unzip, data, self._root_dir())

    @staticmethod
    def _unzip(data: bytes, root: Path) -> Code:
        directory = Path(tempfile.mkdtemp(prefix="code-", dir=root))
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                _check_members(archive.infolist())
                archive.extractall(directory)
        except BaseException as exc:
            # Whatever stopped it (a bad zip, a member colliding with one written before it,
            # a full disk), nothing half-written stays behind.
            shutil.rmtree(directory, ignore_errors=True)
            if isinstance(exc, CodeError):
                raise
            if isinstance(exc, (zipfile.BadZipFile, OSError, ValueError)):
                raise CodeError(f"Could not unzip uploaded file: {exc}") from exc
            raise
        uploaded = directory.with_suffix(".zip")
        uploaded.write_bytes(data)
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
        return Code(str(directory), digest, len(data), str(uploaded))

    async def _from_s3(self, bucket: str, key: str) -> bytes:
        if self.s3_endpoint_url is None:
            raise CodeError("code in S3 needs the moto server (run the stack)")
        session = aioboto3_module("the local runtime").Session(region_name=REGION)
        async with session.client("s3", endpoint_url=self.s3_endpoint_url) as s3:
            try:
                response = await s3.get_object(Bucket=bucket, Key=key)
                return bytes(await response["Body"].read())
            except s3.exceptions.ClientError as exc:
                raise CodeError(
                    f"Error occurred while GetObject. S3 Error Code: "
                    f"{exc.response['Error']['Code']}. S3 Error Message: {exc}"
                ) from exc

    def _root_dir(self) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="aiofanout-lambda-"))
        return self._root

    def cleanup(self) -> None:
        """Remove every unpacked upload."""
        root, self._root = self._root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


def _check_members(members: list[zipfile.ZipInfo]) -> None:
    """Refuse a member that would land outside its directory, or more than 250 MB in all."""
    for member in members:
        path = Path(member.filename)
        if path.is_absolute() or ".." in path.parts:
            raise CodeError(f"Could not unzip uploaded file: unsafe member {member.filename!r}")
    if sum(member.file_size for member in members) > UNZIPPED_LIMIT:
        raise CodeError(f"Unzipped size must be smaller than {UNZIPPED_LIMIT} bytes")
