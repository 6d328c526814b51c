"""A target's side of fan-in: the ``replies=`` option, the reply queue while open, a round trip.

Both AWS targets take ``replies=`` and use a :class:`Fanin` the same way: attach the reply queue
when the target opens (``on_first_open``), name it in every envelope's ``reply_to``, make each
item's call a round trip (register, send, wait for the reply), detach when the target closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .._aws import translate_botocore_errors
from .._errors import ClaimRefused, UsageError
from .._wire import (
    ClaimCheck,
    ClaimRef,
    EnvelopeSource,
    envelope_encoder,
    new_id,
    now_ms,
    split_task,
    unwrap_reply,
    with_deadline,
)
from ._aws_target import AwsClientTarget, sqs_client_maker
from ._reply_queue import MAX_RECEIVERS, POLL_WAIT, ClientMaker, ReplyQueue, attach, detach
from ._reply_router import DEFAULT_GRACE, Answer, ReplyStats, answer_of, parse, raise_or_return

__all__ = ["Claim", "Fanin", "ReplyingTarget", "replies_of"]

#: An item's arguments bound for S3 before its small envelope is sent: the reference, the bytes.
Claim = tuple[ClaimRef, bytes]


def replies_of(
    target: AwsClientTarget,
    replies: bool | str | None,
    *,
    task: str | EnvelopeSource | None,
    reply_to: str | None,
    sqs_endpoint_url: str | None = None,
    claim_check: ClaimCheck | None = None,
) -> Fanin | None:
    """The target's :class:`Fanin` for ``replies=`` (``None``/``False``: no replies)."""
    if replies is None or replies is False:
        return None
    if task is None:
        raise UsageError("replies= needs task envelopes (task=...): a raw item names no reply id")
    if reply_to is not None:
        raise UsageError("pass either replies= (the target waits for them) or reply_to=, not both")
    if target.service != "sqs":
        sqs_endpoint_url = sqs_endpoint_url or None
    else:
        sqs_endpoint_url = sqs_endpoint_url or target.endpoint_url or _endpoint_of(target)
    make_client = sqs_client_maker(
        session=target._session,
        endpoint_url=sqs_endpoint_url,
        region_name=target.region_name,
        pool=MAX_RECEIVERS + 2,
        wait=POLL_WAIT,
    )
    return Fanin(replies, make_client, claim_check=claim_check)


def _endpoint_of(target: AwsClientTarget) -> str | None:
    """The endpoint of the client the user gave the target, if any."""
    client = target._given_client
    endpoint = getattr(getattr(client, "meta", None), "endpoint_url", None)
    return endpoint if isinstance(endpoint, str) else None


#: The longest an item waits for its reply when the fan-out sets neither ``timeout`` nor
#: ``deadline``: Lambda's longest run (15 minutes) and a minute for the reply to travel. A reply
#: that never comes (a worker that refused the envelope, a lost message) ends the item
#: ``TIMED_OUT`` then, instead of a fan-out that never returns.
DEFAULT_REPLY_WAIT = 960.0


class Fanin:
    """A target's replies: which queue, attached while the target is open, one item's round trip.

    ``replies`` is ``True`` (a queue made for the target, deleted when it closes) or a queue URL
    (the user's, shared with every fan-out of this process that names it). ``reply_wait``
    bounds one round trip whatever the fan-out's own timeout and deadline are.
    """

    reply_wait: float = DEFAULT_REPLY_WAIT

    def __init__(
        self,
        replies: bool | str,
        make_client: ClientMaker,
        *,
        grace: float = DEFAULT_GRACE,
        claim_check: ClaimCheck | None = None,
    ) -> None:
        if replies is not True and not (isinstance(replies, str) and replies):
            raise UsageError(f"replies must be True or an SQS queue URL, got {replies!r}")
        self.url = replies if isinstance(replies, str) else None
        self.secret: str | bytes | None = None  # the sender's: replies must be signed with it
        self.grace = grace
        self.claim_check = claim_check
        self._make_client = make_client
        self._queue: ReplyQueue | None = None
        self._stats = ReplyStats()
        #: The URL of the reply queue attached now, or last (``""`` before the first open).
        self.last_url = ""

    @property
    def stats(self) -> ReplyStats:
        """What the reply queue received (the last one, once the target is closed)."""
        return self._queue.stats if self._queue is not None else self._stats

    @property
    def waiting(self) -> int:
        """Items waiting for their reply on the attached queue now (of every fan-out on it)."""
        return len(self._queue.router.waiting) if self._queue is not None else 0

    async def attach(self) -> str:
        """Attach the reply queue; return its URL (what envelopes name in ``reply_to``)."""
        self._queue = await attach(self.url, self._make_client, grace=self.grace)
        self.last_url = self._queue.url
        return self._queue.url

    async def detach(self) -> None:
        """Let go of the reply queue (the last user stops it)."""
        queue, self._queue = self._queue, None
        if queue is not None:
            self._stats = queue.stats
            await detach(queue)

    async def _reply_within_wait(self, future: Awaitable[Any], envelope_id: str) -> Any:
        try:
            async with asyncio.timeout(self.reply_wait):
                return await future
        except TimeoutError as exc:
            raise TimeoutError(
                f"no reply to envelope {envelope_id} within {self.reply_wait:g} s: the worker may "
                "have refused it (see its logs, or the function's on-failure destination); give "
                "the fan-out a timeout= or deadline= to bound the wait sooner"
            ) from exc

    async def round_trip(self, envelope_id: str, send: Callable[[], Awaitable[object]]) -> Any:
        """Send one envelope and return its reply's value, or raise its error.

        The item is registered before the send, so no reply can come before it is expected; a
        late reply of an earlier attempt of the item (same envelope id) answers at once.
        """
        if self._queue is None:
            raise UsageError("the target is not open: its reply queue is not attached")
        router = self._queue.router
        future = router.expect(envelope_id)
        try:
            if not future.done():
                await send()
            received = await self._reply_within_wait(future, envelope_id)
            answer = parse(received, secret=self.secret) if isinstance(received, str) else received
            if isinstance(answer[0], ClaimRef):
                answer = await self._claimed(answer[0], envelope_id)
            return raise_or_return(answer)
        finally:
            router.forget(envelope_id)

    async def _claimed(self, ref: ClaimRef, envelope_id: str) -> Answer:
        """The reply that waits in S3 (the object is deleted once read)."""
        if self.claim_check is None:
            error = ClaimRefused(
                "the reply waits in S3 and this target has no claim check: "
                "claim_check=ClaimCheck(bucket=...)"
            )
            return None, error
        with translate_botocore_errors():
            reply = await self.claim_check.take_reply(ref, envelope_id)
        return answer_of(unwrap_reply, reply)


class ReplyingTarget(AwsClientTarget):
    """An AWS target that may wait for replies: the encoder, the reply queue while open.

    Subclasses call :meth:`setup_replies` from ``__init__`` and, with :attr:`fanin` set, make
    each call a :meth:`Fanin.round_trip`.
    """

    fanin: Fanin | None = None
    claim_check: ClaimCheck | None = None
    _held_open: contextlib.AsyncExitStack | None = None  # the claim check, while open

    def setup_replies(
        self,
        replies: bool | str | None,
        *,
        task: str | EnvelopeSource | None,
        secret: str | bytes | None,
        reply_to: str | None,
        sqs_endpoint_url: str | None = None,
        claim_check: ClaimCheck | None = None,
    ) -> None:
        """Check ``replies=`` and build the envelope encoder (again at open, for the queue)."""
        if claim_check is not None and task is None:
            raise UsageError("claim_check= needs task envelopes (task=...): raw JSON names none")
        self.fanin = replies_of(
            self,
            replies,
            task=task,
            reply_to=reply_to,
            sqs_endpoint_url=sqs_endpoint_url,
            claim_check=claim_check,
        )
        self.claim_check = claim_check
        self._task, self._secret = task, secret
        if self.fanin is not None:
            self.fanin.secret = self._signing_secret()
        # Called with id= too: an item awaiting its reply carries an id known beforehand.
        self.encode: Callable[..., bytes] = envelope_encoder(task, secret=secret, reply_to=reply_to)

    def encode_item(self, item: Any, key: str | None = None) -> tuple[bytes, str]:
        """The item's envelope and the reply id it carries (``""``: no reply awaited).

        ``key`` is the item's idempotency key in a journaled run (raw JSON has no field for it).
        """
        fields: dict[str, Any] = {}
        if key is not None and self._task is not None:
            fields["idempotency_key"] = key
        reply_id = new_id() if self.fanin is not None else ""
        if reply_id:
            fields["id"] = reply_id
        return self.encode(item, **fields), reply_id

    def stamped(self, body: bytes, seconds: float | None) -> bytes:
        """``body`` carrying a deadline ``seconds`` from now (``None``: as it is).

        Stamped per attempt, just before sending: the worker refuses an envelope whose deadline
        passed (``Expired``: it never runs) and runs the task under the time left. Raw JSON
        (``task=None``) is sent as it is.
        """
        if seconds is None or self._task is None:
            return body
        return with_deadline(body, now_ms() + int(seconds * 1000), secret=self._signing_secret())

    def _signing_secret(self) -> str | bytes | None:
        return self._secret if self._secret is not None else getattr(self._task, "secret", None)

    def claimed(self, payload: bytes, limit: int) -> tuple[bytes, Claim | None]:
        """``payload``, or over ``limit`` with a claim check: the small envelope and its claim.

        The arguments go to S3 (:meth:`upload`, before the envelope is sent); the small envelope
        names them and is signed again, so its signature covers the reference and the digest.
        """
        if len(payload) <= limit or self.claim_check is None:
            return payload, None
        small, ref, blob = split_task(payload, self.claim_check, secret=self._signing_secret())
        return small, (ref, blob)

    async def upload(self, claims: Iterable[Claim | None]) -> None:
        """Store the claimed arguments of the items about to be sent (again on a retry)."""
        for claim in claims:
            if claim is not None and self.claim_check is not None:
                with translate_botocore_errors():
                    await self.claim_check.put(*claim)

    @property
    def reply_stats(self) -> ReplyStats:
        """What the reply queue received: replies, duplicates, late replies, strays.

        Example::

            await dispatch_many(target, keys, concurrency=50)
            print(target.reply_stats)   # ReplyStats(received=..., duplicates=..., ...)
        """
        if self.fanin is None:
            raise UsageError("this target was made without replies=")
        return self.fanin.stats

    async def on_first_open(self) -> None:
        if self.claim_check is not None:  # one S3 client for the claims while the target is open
            self._held_open = contextlib.AsyncExitStack()
            await self._held_open.enter_async_context(self.claim_check.opened())
        try:
            if self.fanin is not None:
                reply_to = await self.fanin.attach()
                self.encode = envelope_encoder(self._task, secret=self._secret, reply_to=reply_to)
        except BaseException:
            await self._let_go_of_the_claim_check()
            raise

    async def on_last_close(self) -> None:
        try:
            if self.fanin is not None:
                await self.fanin.detach()
        finally:
            await self._let_go_of_the_claim_check()

    async def _let_go_of_the_claim_check(self) -> None:
        held, self._held_open = self._held_open, None
        if held is not None:
            await held.aclose()


def checked_expires(expires: object, *, waits: bool) -> float | None:
    """``expires=`` checked: seconds a fire-and-forget message stays worth running."""
    if expires is None:
        return None
    if waits:
        raise UsageError(
            "expires= is for fire-and-forget sends: where the answer is awaited (RequestResponse,"
            " replies=), each attempt already carries its timeout or the fan-out's deadline"
        )
    if isinstance(expires, bool) or not isinstance(expires, int | float) or not expires > 0:
        raise UsageError(f"expires must be seconds > 0 (or None), got {expires!r}")
    return float(expires)
