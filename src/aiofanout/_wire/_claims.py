"""Claim checks: a payload over a message limit waits in S3, the message carries a reference.

A task envelope over the limit keeps every field but its arguments: ``args`` and ``kwargs`` go
to an S3 object, and the envelope names it in ``claim`` (bucket, key, size, SHA-256). The small
envelope is signed like any other, so the signature covers the reference and the digest: a
swapped object fails the digest check (:class:`ClaimRefused`). A reply over the limit goes the
same way, the object holding the whole reply.

Whoever reads an object deletes it: the worker an item's, the sender a reply's. What a crash
leaves behind (an object written, its message never read) is for an S3 lifecycle rule to
expire: an ``Expiration`` of 1 day on the prefix (``aiofanout/claims/`` by default).

The S3 client has owners: :meth:`ClaimCheck.opened` keeps one client for every call made on
its loop while it is open (a target holds it open while the target is open, a worker for as
long as its loop lives), and the last to leave closes it. A call with none open makes a client
of its own and closes it after.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from .._aws import aws_session
from .._errors import ClaimRefused, InvalidEnvelope, UsageError
from ._envelopes import (
    ClaimRef,
    ReplyEnvelope,
    TaskEnvelope,
    decode_reply,
    new_id,
)

__all__ = [
    "DEFAULT_PREFIX",
    "ClaimCheck",
    "check",
    "decode_reply_object",
    "join_task",
]

DEFAULT_PREFIX = "aiofanout/claims/"


@dataclass(slots=True)
class _Lease:
    """One S3 client shared by those who hold a claim check open on one loop."""

    client: asyncio.Task[Any]  # the client being made, then made
    holders: int = 0

    async def close(self) -> None:
        if not self.client.done():
            self.client.cancel()
        elif not self.client.cancelled() and self.client.exception() is None:
            await self.client.result().close()


@dataclass(frozen=True, slots=True)
class ClaimCheck:
    """Send payloads over the SQS or Lambda limit through an S3 bucket instead of failing.

    Give the same bucket to the target (``claim_check=``) and to the worker's ``App``. An item
    or reply over the limit is stored as an object under ``prefix``; the message carries its
    bucket, key, size and SHA-256, and the reader checks the digest and deletes the object.
    Set a lifecycle rule on the prefix (expire after 1 day) for objects a crash leaves behind.

    Example::

        claims = ClaimCheck(bucket="fanout-claims")
        target = SqsTarget(queue_url, task="resize", replies=True, claim_check=claims)
        app = App("worker", claim_check=claims)
    """

    bucket: str
    endpoint_url: str | None = None
    region_name: str | None = None
    prefix: str = DEFAULT_PREFIX
    session: Any = field(default=None, compare=False, repr=False)
    _leases: dict[asyncio.AbstractEventLoop, _Lease] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if not self.bucket:
            raise UsageError("ClaimCheck needs a bucket name")

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[ClaimCheck]:
        """Keep one S3 client for the calls made on this loop while open; close it after.

        Opened again while open (by a second target, say), the client is shared, and the last
        to leave closes it. Targets and workers open their claim check themselves; open it
        yourself around calls of your own.

        Example::

            async with claims.opened():
                for ref in refs:
                    await claims.forget(ref)
        """
        loop = asyncio.get_running_loop()
        lease = self._leases.get(loop)
        if lease is None:
            lease = self._leases[loop] = _Lease(loop.create_task(self._new_client()))
        lease.holders += 1
        try:
            await asyncio.shield(lease.client)
            yield self
        finally:
            lease.holders -= 1
            if lease.holders == 0 and self._leases.get(loop) is lease:
                del self._leases[loop]
                await lease.close()

    async def _new_client(self) -> Any:
        # The context manager's enter makes the client; its exit is client.close() (_Lease).
        return await self._client().__aenter__()

    @contextlib.asynccontextmanager
    async def _s3(self) -> AsyncIterator[Any]:
        """The client of the open lease on this loop, or one made for this call alone."""
        lease = self._leases.get(asyncio.get_running_loop())
        if lease is not None:
            yield await asyncio.shield(lease.client)
        else:
            async with self._client() as s3:
                yield s3

    def reference(self, data: bytes) -> ClaimRef:
        """A fresh reference for ``data`` (not stored yet)."""
        digest = hashlib.sha256(data).hexdigest()
        return ClaimRef(
            bucket=self.bucket, key=self.prefix + new_id(), size=len(data), sha256=digest
        )

    def _client(self) -> Any:
        session = aws_session(self.session, "claim checks")
        return session.client("s3", endpoint_url=self.endpoint_url, region_name=self.region_name)

    async def put(self, ref: ClaimRef, data: bytes) -> None:
        """Store ``data`` where ``ref`` points."""
        async with self._s3() as s3:
            await s3.put_object(Bucket=ref.bucket, Key=ref.key, Body=data)

    async def read(self, ref: ClaimRef) -> bytes:
        """The object ``ref`` names, checked against its size and digest (left in place).

        Only objects of this claim check's own bucket and prefix are read: a message cannot make
        a reader fetch (or, later, delete) anything else its credentials reach. Raises
        :class:`ClaimRefused` when the reference points elsewhere, or the object is gone (read
        already, expired) or does not match.
        """
        self._refuse_outside(ref)
        async with self._s3() as s3:
            try:
                # The object's size first: one declared as 10 bytes and 200 MiB in the bucket is
                # refused without reading it. Then at most the declared size is read.
                head = await s3.head_object(Bucket=ref.bucket, Key=ref.key)
                _check_size(ref, int(head["ContentLength"]))
                data = await _read_at_most(s3, ref)
            except s3.exceptions.ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code not in ("NoSuchKey", "404", "NotFound"):
                    raise
                raise ClaimRefused(f"claimed object s3://{ref.bucket}/{ref.key} is gone") from exc
        check(ref, data)
        return data

    def owns(self, ref: ClaimRef) -> bool:
        """Whether ``ref`` names an object of this claim check's own bucket and prefix."""
        return ref.bucket == self.bucket and _confined(ref.key, self.prefix)

    def _refuse_outside(self, ref: ClaimRef) -> None:
        if not self.owns(ref):
            raise ClaimRefused(
                f"the claim names s3://{ref.bucket}/{ref.key}, outside this claim check's "
                f"s3://{self.bucket}/{self.prefix}: refused"
            )

    async def forget(self, ref: ClaimRef) -> None:
        """Delete the object ``ref`` names (its work is done: nobody needs to read it again).

        Only objects of this claim check's bucket and prefix: a message naming any other object
        raises :class:`ClaimRefused` and nothing is deleted.
        """
        self._refuse_outside(ref)
        async with self._s3() as s3:
            await s3.delete_object(Bucket=ref.bucket, Key=ref.key)

    async def take(self, ref: ClaimRef) -> bytes:
        """:meth:`read`, then :meth:`forget`: for what is read once, such as a reply."""
        data = await self.read(ref)
        await self.forget(ref)
        return data

    async def take_reply(self, ref: ClaimRef, envelope_id: str) -> ReplyEnvelope:
        """The reply stored for ``envelope_id`` (the object deleted once read)."""
        reply = decode_reply_object(await self.take(ref))
        if reply.id != envelope_id:
            raise ClaimRefused(f"claimed reply answers {reply.id!r}, not {envelope_id!r}")
        return reply

    async def store_reply(self, reply: ReplyEnvelope, body: bytes) -> ReplyEnvelope:
        """Store a reply's wire ``body``; the small reply that names it."""
        ref = self.reference(body)
        await self.put(ref, body)
        return ReplyEnvelope(id=reply.id, ok=reply.ok, claim=ref)


async def _read_at_most(s3: Any, ref: ClaimRef) -> bytes:
    """The first ``ref.size`` bytes of the object (it may have grown since its HEAD)."""
    if ref.size == 0:
        return b""
    response = await s3.get_object(Bucket=ref.bucket, Key=ref.key, Range=f"bytes=0-{ref.size - 1}")
    async with response["Body"] as stream:
        data: bytes = await stream.read()
    return data


def _confined(key: str, prefix: str) -> bool:
    """``key`` is under ``prefix`` and cannot climb out of it (no ``..`` segment)."""
    return key.startswith(prefix) and ".." not in key[len(prefix) :].split("/")


def _check_size(ref: ClaimRef, size: int) -> None:
    if size != ref.size:
        raise ClaimRefused(
            f"claimed object s3://{ref.bucket}/{ref.key} is {size:,} bytes, not the "
            f"{ref.size:,} its reference names: replaced or corrupted, refused unread"
        )


def check(ref: ClaimRef, data: bytes) -> None:
    """Raise :class:`ClaimRefused` unless ``data`` has the size and digest ``ref`` names."""
    if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
        raise ClaimRefused(
            f"claimed object s3://{ref.bucket}/{ref.key} does not match its reference "
            "(size or digest): replaced or corrupted"
        )


def join_task(envelope: TaskEnvelope, blob: bytes) -> TaskEnvelope:
    """``envelope`` with the arguments its claimed object holds (checked already)."""
    try:
        moved = json.loads(blob)
        update = {"args": moved["args"], "kwargs": moved["kwargs"], "claim": None}
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidEnvelope(f"claimed object holds no arguments: {exc}") from exc
    try:
        return TaskEnvelope.model_validate(envelope.model_dump() | update)
    except ValidationError as exc:
        errors = exc.error_count()
        raise InvalidEnvelope(f"claimed arguments are not valid: {errors} errors") from exc


def decode_reply_object(blob: bytes) -> ReplyEnvelope:
    """A claimed reply object: a whole reply envelope, itself no reference."""
    reply = decode_reply(blob)
    if reply.claim is not None:
        raise InvalidEnvelope("a claimed reply names another claim")
    return reply
