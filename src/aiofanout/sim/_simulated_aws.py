"""``SimulatedAws``: one account's Lambda and SQS, in-process, on the running loop's clock."""

from __future__ import annotations

import asyncio
import random
from types import TracebackType
from typing import Any

from .._errors import UsageError
from ._async_invokes import AsyncInvokes, EventConfig
from ._cost import Cost, Prices
from ._durations import Duration, duration_of
from ._lambda import DEFAULT_ACCOUNT_CONCURRENCY, Account, Architecture, Function
from ._lambda_client import LambdaClient
from ._sqs import EventSourceMapping, Queue, SqsClient
from ._timeline import Timeline
from ._wakeups import Wakeups

__all__ = ["SimulatedAws"]


class SimulatedAws:
    """An AWS account's Lambda and SQS, simulated as AWS documents them, in virtual time.

    Run it on a virtual-clock loop (:func:`run_in_virtual_time`) and an hour of fan-out takes
    seconds; on any other loop it runs in real time. ``seed`` makes a run repeat exactly.
    ``latency`` is each call's round trip outside the function (network and Lambda's front
    end), drawn per call and split before and after: give it a spread (``Uniform(0.015,
    0.025)``) and calls sent together arrive in a random order, as they do over a network.
    ``request_rate=False`` leaves the invoke request rate quota out (the local runtime does not
    model it).

    The library's targets drive it through the clients it makes, exactly as they drive AWS.

    Example::

        async def main():
            async with SimulatedAws(account_concurrency=1000, seed=1) as aws:
                aws.function("worker", duration=LogNormal(0.2), memory=512)
                target = LambdaTarget("worker", task=None, client=aws.lambda_client())
                result = await dispatch_many(target, range(100_000), concurrency=1000,
                                             adaptive=True)
                print(result.counts, aws.cost().total)

        run_in_virtual_time(main())
    """

    def __init__(
        self,
        *,
        account_concurrency: int = DEFAULT_ACCOUNT_CONCURRENCY,
        seed: int = 0,
        latency: Duration | float = 0.0,
        request_rate: bool = True,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.latency = duration_of(latency, "latency")
        self.account = Account(account_concurrency, request_rate=request_rate)
        self.functions: dict[str, Function] = {}
        self.event_configs: dict[str, EventConfig] = {}
        self.queues: dict[str, Queue] = {}
        self.mappings: list[EventSourceMapping] = []
        self.async_invokes = AsyncInvokes()
        self._wakeups: Wakeups | None = None

    @property
    def wakeups(self) -> Wakeups:
        """Shared wake-ups on the running loop (made on first use, again on a new loop)."""
        loop = asyncio.get_running_loop()
        if self._wakeups is None or self._wakeups.loop is not loop:
            self._wakeups = Wakeups(loop)
        return self._wakeups

    def half_trip(self) -> float:
        """Half a round trip: one way (0 without latency)."""
        latency = self.latency
        return latency.sample(self.rng) / 2 if latency.mean else 0.0

    def now(self) -> float:
        """The running loop's time."""
        return asyncio.get_running_loop().time()

    async def __aenter__(self) -> SimulatedAws:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the event source mappings' pollers and drop the events still queued."""
        for mapping in self.mappings:
            mapping.stop()
        self.async_invokes.cancel()

    @property
    def timeline(self) -> Timeline:
        """The account's concurrency, completions and 429s, per second."""
        return self.account.timeline

    def function(
        self,
        name: str,
        *,
        duration: Duration | float = 0.1,
        cold_start: Duration | float = 0.25,
        reserved_concurrency: int | None = None,
        memory: int = 128,
        architecture: Architecture = "x86_64",
        timeout: float = 3.0,
        failure_rate: float = 0.0,
        handler: Any = None,
        maximum_retry_attempts: int = 2,
        maximum_event_age: float = 21_600.0,
    ) -> Function:
        """Create a function (AWS's defaults: 128 MB, x86_64, a 3 s timeout).

        ``handler``, if given, is called with each request's decoded JSON payload and its
        return value is the answer (an exception is a function error); without one, every
        request answers ``null``. ``failure_rate``: the share of requests that fail.
        ``maximum_retry_attempts`` and ``maximum_event_age`` are its asynchronous invocation
        settings (PutFunctionEventInvokeConfig).
        """
        if name in self.functions:
            raise UsageError(f"a function named {name!r} exists already")
        function = Function(
            name, self.account, self.rng, duration=duration, cold_start=cold_start,
            reserved_concurrency=reserved_concurrency, memory=memory,
            architecture=architecture, timeout=timeout, failure_rate=failure_rate,
            handler=handler,
        )  # fmt: skip
        self.functions[name] = function
        self.event_configs[name] = EventConfig(maximum_retry_attempts, maximum_event_age)
        return function

    def failures(self, name: str) -> list[dict[str, Any]]:
        """The asynchronous invocation records of ``name``'s on-failure destination."""
        return self.event_configs[name].failures

    def queue(
        self,
        name: str,
        *,
        visibility_timeout: float = 30.0,
        dead_letter: Queue | None = None,
        max_receive_count: int = 0,
    ) -> Queue:
        """Create a standard queue (with a redrive policy if ``dead_letter`` is given)."""
        queue = Queue(
            name,
            visibility_timeout=visibility_timeout,
            dead_letter=dead_letter,
            max_receive_count=max_receive_count,
        )
        self.queues[name] = queue
        return queue

    def event_source_mapping(
        self,
        queue: Queue,
        function: Function,
        *,
        batch_size: int = 10,
        maximum_concurrency: int | None = None,
        report_batch_item_failures: bool = True,
    ) -> EventSourceMapping:
        """Have ``function`` poll ``queue`` (call inside the running loop)."""
        mapping = EventSourceMapping(
            queue,
            function,
            batch_size=batch_size,
            maximum_concurrency=maximum_concurrency,
            report_batch_item_failures=report_batch_item_failures,
        )
        mapping.start()
        self.mappings.append(mapping)
        return mapping

    def lambda_client(self) -> LambdaClient:
        """A Lambda client for ``LambdaTarget(client=...)`` (or your own code)."""
        return LambdaClient(self)

    def sqs_client(self) -> SqsClient:
        """An SQS client for ``SqsTarget(client=...)``."""
        return SqsClient(self)

    def enqueue(self, function: Function, payload: bytes, rid: str) -> None:
        """Queue an ``Event`` invoke of ``function`` (the Lambda client does)."""
        self.async_invokes.enqueue(function, self.event_configs[function.name], payload, rid)

    async def drain(self) -> None:
        """Wait until the queued ``Event`` invokes are done."""
        await self.async_invokes.drain()

    def cost(self, prices: Prices | None = None) -> Cost:
        """What the run so far would cost on AWS at ``prices`` (AWS's list prices by default)."""
        prices = prices or Prices()
        requests = duration = 0.0
        for function in self.functions.values():
            stats = function.stats
            requests += stats.invocations * prices.lambda_request
            gb_seconds = stats.billed_seconds * function.memory / 1024
            duration += gb_seconds * prices.gb_second(function.architecture)
        sqs = sum(queue.requests for queue in self.queues.values()) * prices.sqs_request
        return Cost(requests=requests, duration=duration, sqs=sqs)
