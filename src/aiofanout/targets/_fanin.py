"""A target's side of fan-in: the ``replies=`` option, the reply queue while open, a round trip.

Both AWS targets take ``replies=`` and use a :class:`Fanin` the same way: attach the reply queue
when the target opens (``on_first_open``), name it in every envelope's ``reply_to``, make each
item's call a round trip (register, send, wait for the reply), detach when the target closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .._aws import translate_botocore_errors
from .._errors import ClaimRefused, UsageError
from .._wire import (
    Claim,
    ClaimCheck,
    ClaimRef,
    DescribesTask,
    Outgoing,
    PreparedEnvelope,
    TaskSpec,
    envelope_encoder,
    new_id,
    now_ms,
    task_spec,
    unwrap_reply,
)
from ._aws_target import AwsClientTarget, sqs_client_maker
from ._reply_queue import MAX_RECEIVERS, POLL_WAIT, ClientMaker, ReplyQueue, attach, detach
from ._reply_router import DEFAULT_GRACE, Answer, ReplyStats, answer_of, parse, raise_or_return

__all__ = ["Fanin", "ReplyingTarget", "renamed_reply_to", "replies_of"]


def replies_of(
    target: AwsClientTarget,
    replies: bool | str | None,
    *,
    task: str | DescribesTask | None,
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
        raise UsageError(
            "pass either replies= (the target waits for the replies) or send_replies_to= (the "
            "worker sends them there, for someone else), not both"
        )
    if target.service == "lambda":  # the reply queue is elsewhere than the Lambda API
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


def renamed_reply_to(send_replies_to: str | None, reply_to: str | None, target: str) -> str | None:
    """``send_replies_to=``, or ``reply_to=``, its old name, with a ``DeprecationWarning``."""
    if reply_to is None:
        return send_replies_to
    if send_replies_to is not None:
        raise UsageError(f"{target}() got send_replies_to= and reply_to= (its old name): drop one")
    warnings.warn(
        f"{target}(reply_to=...) is now {target}(send_replies_to=...): replies= waits for the "
        "replies, send_replies_to= has the worker send them elsewhere (the old name goes in the "
        "next release)",
        DeprecationWarning,
        stacklevel=3,
    )
    return reply_to


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
    spec: TaskSpec | None = None  # None: raw JSON
    _held_open: contextlib.AsyncExitStack | None = None  # the claim check, while open

    def setup_replies(
        self,
        replies: bool | str | None,
        *,
        task: str | DescribesTask | None,
        secret: str | bytes | None,
        reply_to: str | None,
        sqs_endpoint_url: str | None = None,
        claim_check: ClaimCheck | None = None,
    ) -> None:
        """Check ``replies=`` and build the envelope encoder (again at open, for the queue)."""
        if claim_check is not None and task is None:
            raise UsageError("claim_check= needs task envelopes (task=...): raw JSON names none")
        self.spec = None if task is None else task_spec(task, secret=secret)
        self.fanin = replies_of(
            self,
            replies,
            task=task,
            reply_to=reply_to,
            sqs_endpoint_url=sqs_endpoint_url,
            claim_check=claim_check,
        )
        self.claim_check = claim_check
        if self.fanin is not None and self.spec is not None:
            self.fanin.secret = self.spec.secret
        self.encode = envelope_encoder(self.spec, reply_to=reply_to)

    def outgoing(self, item: Any, key: str | None, *, limit: int, **extra: Any) -> Outgoing:
        """The item's message, its envelope prepared once; ``extra``: SQS's group and dedup ids.

        ``key`` is the item's idempotency key in a journaled run (raw JSON has no field for it).
        An envelope over ``limit`` with a claim check has its arguments claimed: they go to S3
        (:meth:`upload`, before each attempt is sent) and the small envelope names them.
        """
        fields: dict[str, Any] = {}
        if key is not None and self.spec is not None:
            fields["idempotency_key"] = key
        reply_id = new_id() if self.fanin is not None else ""
        if reply_id:  # an item awaiting its reply carries an id known beforehand
            fields["id"] = reply_id
        message = self.encode(item, **fields)
        claim: Claim | None = None
        if isinstance(message, PreparedEnvelope) and message.size > limit and self.claim_check:
            message, claim = message.claimed(self.claim_check)
        return Outgoing(message, reply_id=reply_id, claim=claim, **extra)

    def envelope_id(self, payload: Any) -> str | None:
        message: Outgoing = payload
        return message.envelope_id

    @staticmethod
    def body(message: Outgoing, seconds: float | None) -> bytes:
        """``message``'s bytes for one attempt, with a deadline ``seconds`` from now (or none).

        Finished per attempt, just before sending: the worker refuses an envelope whose deadline
        passed (``Expired``: it never runs) and runs the task under the time left. Raw JSON
        (``task=None``) is sent as it is.
        """
        return message.body(None if seconds is None else now_ms() + int(seconds * 1000))

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
                self.encode = envelope_encoder(self.spec, reply_to=reply_to)
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
