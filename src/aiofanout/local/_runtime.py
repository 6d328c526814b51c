"""A local Lambda runtime: the Invoke API in front, the Runtime API behind, awslambdaric between.

moto runs no function code without Docker, so this is what stands in for Lambda here. One aiohttp
application on 127.0.0.1 serves the Invoke API that botocore and the AWS CLI use, the rest of
the Lambda API, and the Runtime API each execution environment polls. An environment is a real
awslambdaric process, the AWS Runtime Interface Client, so a handler runs exactly as on AWS:
same context object, deadline header, error payloads.

:class:`LocalLambda` composes the parts, grouped by thing:

- ``_functions``: the registry of functions (config, pool, event queue, stats), the seam the
  Python API and the control plane both write through, and their life cycle (``Control``:
  added, reconfigured with old environments retiring, removed, provisioned); ``_code``: zip
  code (inline or in S3 on the moto server), unpacked in a private directory and run isolated;
- ``_sandbox``: the environment pools, the awslambdaric processes, one invocation, the Runtime
  API; ``_faults``: the injected faults, drawn once per invoke;
- ``_events``: ``Event`` invocations, their retries, maximum age and destination records;
- ``_event_sources``: SQS event source mappings and their pollers;
- ``_control_plane``: the HTTP face, with the one route table;
- ``_moto``: the runtime's SQS client of the moto server.

This module keeps the life cycle and :meth:`LocalLambda.invoke`, the one path every invocation
takes (synchronous, queued event or SQS batch): faults, a slot of the account's unreserved
pool (a function without a reservation), a pool environment, the delivery, the init budget and
the function's timeout (either kills the environment), the release.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .._errors import UsageError
from .._limits import PayloadLimits
from .._log_fields import library_logger
from ._background import Background
from ._code import CodeStore
from ._config import AccountLimits, EventSourceMapping, FunctionConfig
from ._control_plane import application
from ._event_sources import Mapping, Mappings
from ._events import EventRunner
from ._functions import Control, Function, FunctionRegistry
from ._moto import SqsClient
from ._sandbox import (
    CONCURRENCY_LIMIT,
    Environment,
    Environments,
    Invocation,
    Report,
    Result,
    RuntimeApi,
    Throttle,
    UnreservedPool,
)

#: Seconds an environment has to start and take its first invocation (AWS's init phase).
INIT_BUDGET = 10.0
#: Bytes of an invocation's log that ``LogType: Tail`` returns (AWS: the last 4 KB).
LOG_TAIL = 4096
#: Invocation logs kept for ``LogType: Tail`` until the Invoke API picks them up (or, for an
#: invocation that did not ask, until newer ones push them out).
KEPT_LOGS = 256
log = library_logger("aiofanout.local")


class LocalLambda:
    """The local Lambda runtime server. Use it through :func:`aiofanout.local.stack`, or alone.

    Example::

        async with LocalLambda() as runtime:
            runtime.add_function(FunctionConfig("worker", "worker.lambda_handler",
                                                code_paths=["examples"]))
            target = LambdaTarget("worker", task="thumbnail", endpoint_url=runtime.endpoint_url)
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        sqs_endpoint_url: str | None = None,
        limits: PayloadLimits | None = None,
        account: AccountLimits | None = None,
        python: str = sys.executable,
    ) -> None:
        if not host.startswith("127."):
            raise UsageError("the local runtime binds to the loopback range only (127.0.0.0/8)")
        self.host = host
        self.port = port
        self.sqs_endpoint_url = sqs_endpoint_url
        self.limits = limits or PayloadLimits()
        self.account = account or AccountLimits()
        self.python = python
        self.functions = FunctionRegistry()
        self._background = Background()
        self._sqs = SqsClient(sqs_endpoint_url)
        self._environments = Environments(
            host=host, python=python, sqs_endpoint_url=sqs_endpoint_url, background=self._background
        )
        self._events = EventRunner(self.invoke, self._sqs, self._background)
        #: The account's concurrency that functions without a reservation share.
        self.unreserved = UnreservedPool(self.account.concurrency)
        self.control = Control(
            self.functions,
            self._environments,
            self._events,
            self._background,
            account=self.account,
            unreserved=self.unreserved,
        )
        self.code = CodeStore(sqs_endpoint_url)
        self.mappings = Mappings(self.invoke, self._sqs, self._background)
        self._logs: OrderedDict[str, tuple[str, Report]] = OrderedDict()
        self._runner: web.AppRunner | None = None

    @property
    def endpoint_url(self) -> str:
        """The Invoke API's URL, for ``endpoint_url=`` of a Lambda client."""
        return f"http://{self.host}:{self.port}"

    # -- life cycle -----------------------------------------------------------------------

    async def start(self) -> LocalLambda:
        """Start serving on the loopback address (a free port unless one was given)."""
        app = application(
            functions=self.functions,
            control=self.control,
            code=self.code,
            mappings=self.mappings,
            limits=self.limits,
            account=self.account,
            invoke=self.invoke,
            log_tail=self.log_tail,
            runtime_api=RuntimeApi(self._environments),
        )
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        self._environments.runner = self._runner
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._environments.lambda_endpoint_url = self.endpoint_url
        return self

    async def stop(self) -> None:
        """Stop every environment process, poller and the server."""
        await self._background.cancel()
        await self._environments.kill_all()
        # Killing environments spawned their sites' stop(): let those finish too.
        await self._background.wait()
        await self._sqs.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.code.cleanup()
        self._environments.cleanup()

    async def __aenter__(self) -> LocalLambda:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def pids(self) -> list[int]:
        """Process ids of the running environments (to check nothing is left behind)."""
        return self._environments.pids()

    def stats(self, name: str) -> dict[str, Any]:
        """Invocations, throttles, cold starts (ms) and live environments of a function."""
        return self.functions.get(name).summary()

    # -- functions and mappings -----------------------------------------------------------

    def add_function(self, config: FunctionConfig) -> None:
        """Register a function (replacing one of the same name, whose environments stop)."""
        self.control.add(Function.create(config))

    async def add_event_source(self, mapping: EventSourceMapping) -> str:
        """Start polling an SQS queue for a function (needs ``sqs_endpoint_url``).

        Returns the mapping's UUID, as ``GetEventSourceMapping`` knows it.
        """
        self.functions.get(mapping.function)
        source_arn = await self.mappings.queue_arn(mapping.queue_url)
        response_types = ["ReportBatchItemFailures"] if mapping.report_batch_item_failures else []
        added = self.mappings.add(Mapping(mapping, source_arn, response_types=response_types))
        await added.settled.wait()
        return added.uuid

    # -- one invocation -------------------------------------------------------------------

    async def invoke(
        self, name: str, payload: bytes, *, request_id: str | None = None, wait: bool = False
    ) -> Result:
        """Run one invocation to its end. ``wait``: wait for capacity instead of throttling."""
        function = self.functions.get(name)
        faults = function.draw_faults()
        request_id = request_id or str(uuid.uuid4())
        try:
            if faults.throttle and not wait:
                raise Throttle(CONCURRENCY_LIMIT)
            if faults.latency:
                await asyncio.sleep(faults.latency)
            if faults.error:
                function.stats.invocations += 1
                return Result.error(
                    "InjectedFault", "an error injected by Faults(error=...)", request_id
                )
            shared, env = await self._acquire(function, wait=wait)
        except Throttle:
            function.stats.throttles += 1
            raise
        function.stats.invocations += 1
        result = asyncio.get_running_loop().create_future()
        timeout = function.config.timeout
        invocation = Invocation(request_id, payload, timeout, result, faults=faults)
        env.deliver(invocation)
        # The environment is released by this task even if the caller goes away mid-invoke.
        finish = self._finish(function, env, invocation, shared=shared)
        return await asyncio.shield(self._background.spawn(finish))

    async def _acquire(self, function: Function, *, wait: bool) -> tuple[bool, Environment]:
        """An environment, and whether the invocation holds a slot of the unreserved pool.

        A function without a reservation takes a slot of the account's unreserved concurrency
        first, then an environment; ``throttle_after`` is the patience for both together.
        """
        patience = None if wait else function.config.throttle_after
        shared = function.reserved is None
        if not shared:
            return False, await function.pool.acquire(self._starter(function), patience=patience)
        clock = asyncio.get_running_loop().time
        give_up = None if patience is None else clock() + patience
        await self.unreserved.take(patience=patience)
        try:
            left = None if give_up is None else max(0.0, give_up - clock())
            return True, await function.pool.acquire(self._starter(function), patience=left)
        except BaseException:
            self.unreserved.give_back()
            raise

    def _starter(self, function: Function) -> Callable[[], Awaitable[Environment]]:
        return lambda: function.start_environment(self._environments)

    async def _finish(
        self, function: Function, env: Environment, invocation: Invocation, *, shared: bool
    ) -> Result:
        try:
            return await self._run(function, env, invocation)
        finally:
            if shared:
                self.unreserved.give_back()

    async def _run(self, function: Function, env: Environment, invocation: Invocation) -> Result:
        # The function's timeout counts from the delivery: on AWS the init phase (process
        # start, imports) has its own budget of 10 s.
        try:
            async with asyncio.timeout(INIT_BUDGET):
                await _first(invocation.delivered, invocation.result)
        except TimeoutError:
            await self._environments.kill(env)
            return Result.error("Runtime.InitTimeout", "init did not finish within 10 s")
        started = time.monotonic()
        try:
            async with asyncio.timeout(invocation.timeout):
                result = await asyncio.shield(invocation.result)
        except TimeoutError:
            await self._environments.kill(env)
            result = _timed_out(invocation)
        report = Report.measure(env, started, time.monotonic())
        await _let_output_arrive()
        stale = function.is_stale(env) or function.pool.over_limit()
        if stale and not env.dead:
            # Its config or code changed meanwhile, or its function's limit was lowered: retire
            # it, its peak memory read first (its /proc entry goes with it).
            self._record_log(env, invocation, result, report.read_now())
            await self._environments.kill(env)
        else:
            self._record_log(env, invocation, result, report)
            function.pool.release(env)
        return result

    def _record_log(
        self, env: Environment, invocation: Invocation, result: Result, report: Report
    ) -> None:
        """Keep the invocation's log (as AWS writes it) for ``LogType: Tail``; log an error."""
        request_id, name = invocation.request_id, env.config.name
        if result.error_type is not None:
            log.warning(
                "%s %s function error %s: %s",
                name,
                request_id,
                result.error_type,
                result.body.decode(errors="replace")[:1000],
            )
        # The text is written only if LogType: Tail asks for it (the Invoke API asks at once);
        # of the output, only what the tail can show is kept.
        self._logs[request_id] = (env.take_log()[-LOG_TAIL:], report)
        while len(self._logs) > KEPT_LOGS:
            self._logs.popitem(last=False)

    def log_tail(self, request_id: str) -> bytes:
        """The last 4 KB of an invocation's log (once: it is forgotten after)."""
        kept = self._logs.pop(request_id, None)
        if kept is None:
            return b""
        output, report = kept
        text = (
            f"START RequestId: {request_id} Version: $LATEST\n{output}"
            f"END RequestId: {request_id}\n{report.line(request_id)}"
        )
        return text.encode()[-LOG_TAIL:]


def _timed_out(invocation: Invocation) -> Result:
    """AWS's timeout error: its message starts with the time and the request id."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    message = (
        f"{now}.000Z {invocation.request_id} Task timed out after {invocation.timeout:.2f} seconds"
    )
    return Result.error("Sandbox.Timedout", message, invocation.request_id)


async def _let_output_arrive() -> None:
    """Let the log relay read what the function printed before it answered.

    The function writes its output to the pipe before it posts its answer, but the two arrive
    on different channels: a few loop turns let the relay catch up.
    """
    for _ in range(3):
        await asyncio.sleep(0)


async def _first(*futures: asyncio.Future[Any]) -> None:
    """Return when one of ``futures`` is done (none is cancelled: others hold them too).

    One callback on each, not ``asyncio.wait`` and a task: this runs once per invocation.
    """
    if any(future.done() for future in futures):
        return
    waiter = asyncio.get_running_loop().create_future()

    def wake(_: object) -> None:
        if not waiter.done():
            waiter.set_result(None)

    for future in futures:
        future.add_done_callback(wake)
    try:
        await waiter
    finally:
        for future in futures:
            future.remove_done_callback(wake)
