"""A local Lambda runtime: the Invoke API in front, the Runtime API behind, awslambdaric between.

moto runs no function code without Docker, so this is what stands in for Lambda here. One aiohttp
server on 127.0.0.1 speaks the subset of the Invoke API that botocore and the AWS CLI use
(``POST /2015-03-31/functions/{name}/invocations``) and, under ``/env/{id}``, the Runtime API
each execution environment polls. An environment is a real ``python -m awslambdaric`` process,
the AWS Runtime Interface Client, with ``AWS_LAMBDA_RUNTIME_API`` pointing at its own prefix, so
a handler runs exactly as on AWS: same context object, deadline header, error payloads.

Scaling follows Lambda: an idle (warm) environment takes the invoke; when all are busy a new one
starts (a cold start: process start and import, measured), up to the reserved concurrency; past
it the invoke is throttled with 429. An invocation past the function's timeout kills its
environment ("Task timed out after N seconds"); a crashed environment fails its invocation and is
replaced on demand; an import error is reported as an init error.

Pitfalls of awslambdaric 4.x this code avoids: ``/next`` must answer with ``Content-Type:
application/json`` (without it the client crashes), must never answer 5xx (the client exits),
and must stay open until work arrives; without ``Lambda-Runtime-Deadline-Ms`` the context
reports 0 ms left; ``AWS_LAMBDA_MAX_CONCURRENCY`` forks extra pollers, so it is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .._errors import UsageError
from .._limits import Limits
from ._config import EventSourceMapping, FunctionConfig

log = logging.getLogger("aiofanout.local")

REGION = "us-east-1"
ACCOUNT = "123456789012"
RUNTIME_PREFIX = "/2018-06-01/runtime"
JSON = "application/json"
INIT_BUDGET = 10.0


@dataclass(slots=True)
class Invocation:
    """One invoke on its way through an environment."""

    request_id: str
    payload: bytes
    timeout: float
    result: asyncio.Future[Result]
    delivered: asyncio.Event = field(default_factory=asyncio.Event)
    hang: bool = False
    crash: bool = False

    @property
    def deadline_ms(self) -> int:
        """Epoch ms when the function must be done, counted from the delivery (now)."""
        return int((time.time() + self.timeout) * 1000)


@dataclass(frozen=True, slots=True)
class Result:
    """How an invocation ended: the response body, or a function error."""

    body: bytes
    error_type: str | None = None

    @classmethod
    def error(cls, error_type: str, message: str, request_id: str = "") -> Result:
        body = {
            "errorMessage": message,
            "errorType": error_type,
            "requestId": request_id,
            "stackTrace": [],
        }
        return cls(json.dumps(body).encode(), error_type)


@dataclass(eq=False)
class Environment:
    """One execution environment: an awslambdaric process and its Runtime API state."""

    id: str
    function: Function
    process: asyncio.subprocess.Process | None = None
    site: web.TCPSite | None = None
    port: int = 0
    inbox: asyncio.Queue[Invocation | None] = field(default_factory=asyncio.Queue)
    current: Invocation | None = None
    spawned_at: float = field(default_factory=time.monotonic)
    ready_at: float | None = None
    init_error: Result | None = None
    dead: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass(eq=False)
class Function:
    """A registered function and its environments."""

    config: FunctionConfig
    idle: deque[Environment] = field(default_factory=deque)
    environments: dict[str, Environment] = field(default_factory=dict)
    events: asyncio.Queue[tuple[str, bytes, int]] = field(default_factory=asyncio.Queue)
    waiters: deque[asyncio.Future[Environment | None]] = field(default_factory=deque)
    cold_starts: list[float] = field(default_factory=list)
    dice: random.Random = field(default_factory=random.Random)
    invocations: int = 0
    throttles: int = 0

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.config.name}"


class Throttle(Exception):
    """Internal: no capacity for this invoke."""


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
        limits: Limits | None = None,
        python: str = sys.executable,
    ) -> None:
        if not host.startswith("127."):
            raise UsageError("the local runtime binds to the loopback range only (127.0.0.0/8)")
        self.host = host
        self.port = port
        self.sqs_endpoint_url = sqs_endpoint_url
        self.limits = limits or Limits()
        self.python = python
        self.functions: dict[str, Function] = {}
        self.environments: dict[str, Environment] = {}
        self._by_port: dict[int, Environment] = {}
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sqs: Any = None
        self._sqs_stack = contextlib.AsyncExitStack()

    @property
    def endpoint_url(self) -> str:
        """The Invoke API's URL, for ``endpoint_url=`` of a Lambda client."""
        return f"http://{self.host}:{self.port}"

    # -- life cycle -----------------------------------------------------------------------

    async def start(self) -> LocalLambda:
        """Start serving on the loopback address (a free port unless one was given)."""
        app = web.Application(client_max_size=self.limits.lambda_sync_payload + 1024 * 1024)
        app.router.add_post("/2015-03-31/functions/{name}/invocations", self._invoke_api)
        runtime = RUNTIME_PREFIX
        app.router.add_get(runtime + "/invocation/next", self._next)
        app.router.add_post(runtime + "/invocation/{request_id}/response", self._response)
        app.router.add_post(runtime + "/invocation/{request_id}/error", self._error)
        app.router.add_post(runtime + "/init/error", self._init_error)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        """Stop every environment process, poller and the server."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(self._kill(env) for env in list(self.environments.values())))
        # Killing environments spawned their sites' stop(): let those finish too.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._sqs_stack.aclose()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> LocalLambda:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def pids(self) -> list[int]:
        """Process ids of the running environments (to check nothing is left behind)."""
        return [e.process.pid for e in self.environments.values() if e.process is not None]

    def stats(self, name: str) -> dict[str, Any]:
        """Invocations, throttles, cold starts (ms) and live environments of a function."""
        fn = self._function(name)
        return {
            "invocations": fn.invocations,
            "throttles": fn.throttles,
            "cold_starts_ms": [round(c * 1000, 1) for c in fn.cold_starts],
            "environments": len(fn.environments),
        }

    # -- functions and mappings -----------------------------------------------------------

    def add_function(self, config: FunctionConfig) -> None:
        """Register a function (replacing one of the same name, whose environments stop)."""
        old = self.functions.get(config.name)
        if old is not None:
            for env in list(old.environments.values()):
                self._spawn(self._kill(env))
        function = Function(config, dice=config.faults.dice())
        self.functions[config.name] = function
        self._spawn(self._run_events(function))

    async def add_event_source(self, mapping: EventSourceMapping) -> None:
        """Start polling an SQS queue for a function (needs ``sqs_endpoint_url``)."""
        from ._esm import poll

        self._function(mapping.function)
        sqs = await self._sqs_client()
        for _ in range(mapping.pollers):
            self._spawn(poll(self, sqs, mapping))

    def _function(self, name: str) -> Function:
        function = self.functions.get(name)
        if function is None:
            raise UsageError(f"no local function named {name!r}; add it with add_function()")
        return function

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _sqs_client(self) -> Any:
        if self._sqs is None:
            if self.sqs_endpoint_url is None:
                raise UsageError("SQS features need LocalLambda(sqs_endpoint_url=...)")
            import aioboto3
            from aiobotocore.config import AioConfig

            session = aioboto3.Session(region_name=REGION)
            config = AioConfig(max_pool_connections=50, retries={"total_max_attempts": 3})
            self._sqs = await self._sqs_stack.enter_async_context(
                session.client("sqs", endpoint_url=self.sqs_endpoint_url, config=config)
            )
        return self._sqs

    # -- the Invoke API -------------------------------------------------------------------

    async def _invoke_api(self, request: web.Request) -> web.Response:  # noqa: PLR0911 - one per answer
        name = request.match_info["name"].rpartition(":function:")[2] or request.match_info["name"]
        function = self.functions.get(name)
        if function is None:
            return _api_error(404, "ResourceNotFoundException", f"Function not found: {name}")
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        payload = await request.read()
        limit = (
            self.limits.lambda_async_payload if kind == "Event" else self.limits.lambda_sync_payload
        )
        if len(payload) > limit:
            return _api_error(
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {limit} bytes for the {kind} invocation type",
            )
        request_id = str(uuid.uuid4())
        if kind == "DryRun":
            return web.Response(status=204, headers={"x-amzn-RequestId": request_id})
        if kind == "Event":
            function.events.put_nowait((request_id, payload, 1))
            return web.Response(status=202, headers={"x-amzn-RequestId": request_id})
        if kind != "RequestResponse":
            return _api_error(400, "InvalidParameterValueException", f"bad invocation type {kind}")
        try:
            result = await self.invoke(name, payload, request_id=request_id)
        except Throttle as exc:
            return _api_error(
                429,
                "TooManyRequestsException",
                "Rate Exceeded.",
                reason=str(exc) or "ReservedFunctionConcurrentInvocationLimitExceeded",
            )
        headers = {"x-amzn-RequestId": request_id, "X-Amz-Executed-Version": "$LATEST"}
        if result.error_type is not None:
            headers["X-Amz-Function-Error"] = "Unhandled"
        return web.Response(status=200, body=result.body, content_type=JSON, headers=headers)

    async def invoke(
        self, name: str, payload: bytes, *, request_id: str | None = None, wait: bool = False
    ) -> Result:
        """Run one invocation to its end. ``wait``: wait for capacity instead of throttling."""
        function = self._function(name)
        faults = function.config.faults
        dice = function.dice
        if faults.throttle and dice.random() < faults.throttle and not wait:
            function.throttles += 1
            raise Throttle("ReservedFunctionConcurrentInvocationLimitExceeded")
        if faults.latency:
            await asyncio.sleep(faults.latency)
        request_id = request_id or str(uuid.uuid4())
        if faults.error and dice.random() < faults.error:
            function.invocations += 1
            return Result.error(
                "InjectedFault", "an error injected by Faults(error=...)", request_id
            )
        patience = None if wait else function.config.throttle_after
        env = await self._acquire(function, patience=patience)
        function.invocations += 1
        timeout = function.config.timeout
        invocation = Invocation(
            request_id,
            payload,
            timeout,
            asyncio.get_running_loop().create_future(),
            hang=bool(faults.hang and dice.random() < faults.hang),
            crash=bool(faults.crash and dice.random() < faults.crash),
        )
        env.current = invocation
        env.inbox.put_nowait(invocation)
        # The environment is released by this task even if the caller goes away mid-invoke.
        return await asyncio.shield(self._spawn(self._finish(env, invocation, timeout)))

    async def _finish(self, env: Environment, invocation: Invocation, timeout: float) -> Result:
        # The function's timeout counts from the delivery: on AWS the init phase (process
        # start, imports) has its own budget of 10 s.
        try:
            async with asyncio.timeout(INIT_BUDGET):
                await _first(invocation.delivered.wait(), invocation.result)
        except TimeoutError:
            await self._kill(env)
            return Result.error("Runtime.InitTimeout", "init did not finish within 10 s")
        try:
            async with asyncio.timeout(timeout):
                result = await asyncio.shield(invocation.result)
        except TimeoutError:
            await self._kill(env)
            return Result.error(
                "Sandbox.Timedout",
                f"Task timed out after {timeout:.2f} seconds",
                invocation.request_id,
            )
        self._release(env)
        return result

    async def _acquire(self, function: Function, *, patience: float | None) -> Environment:
        """A warm environment, a new one, or (after ``patience`` seconds) a throttle."""
        give_up = None if patience is None else time.monotonic() + patience
        while True:
            while function.idle:
                env = function.idle.popleft()
                if not env.dead:
                    return env
            if len(function.environments) < function.config.reserved_concurrency:
                return await self._start_environment(function)
            left = None if give_up is None else give_up - time.monotonic()
            if left is not None and left <= 0:
                function.throttles += 1
                raise Throttle("ReservedFunctionConcurrentInvocationLimitExceeded")
            handed = await self._wait_for_environment(function, left)
            if handed is not None and not handed.dead:
                return handed

    async def _wait_for_environment(
        self, function: Function, timeout: float | None
    ) -> Environment | None:
        """Queue for the next released environment (FIFO; ``None``: capacity freed, look again)."""
        waiter: asyncio.Future[Environment | None] = asyncio.get_running_loop().create_future()
        function.waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError:
            # Handed an environment just as the timeout fired: keep it rather than lose it.
            return waiter.result() if waiter.done() and not waiter.cancelled() else None

    def _release(self, env: Environment) -> None:
        env.current = None
        if env.dead:
            self._wake_one(env.function, None)
        elif not self._wake_one(env.function, env):
            env.function.idle.append(env)

    def _wake_one(self, function: Function, env: Environment | None) -> bool:
        while function.waiters:
            waiter = function.waiters.popleft()
            if not waiter.done():
                waiter.set_result(env)
                return True
        return False

    # -- environments ---------------------------------------------------------------------

    async def _start_environment(self, function: Function) -> Environment:
        config = function.config
        env = Environment(uuid.uuid4().hex[:12], function)
        function.environments[env.id] = env
        self.environments[env.id] = env
        try:
            # Each environment polls its own port: awslambdaric's init-error path uses
            # http.client, which takes host:port and nothing more, so no path prefix.
            assert self._runner is not None
            env.site = web.TCPSite(self._runner, self.host, 0)
            await env.site.start()
            env.port = env.site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._by_port[env.port] = env
            variables = self._environment_variables(config, env)
            env.process = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                "awslambdaric",
                config.runtime_handler,
                env=variables,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                start_new_session=True,  # its own process group: a kill reaches any fork
            )
        except BaseException:
            self._forget(env)
            raise
        env.tasks.append(self._spawn(self._relay_logs(env)))
        env.tasks.append(self._spawn(self._watch(env)))
        return env

    def _environment_variables(self, config: FunctionConfig, env: Environment) -> dict[str, str]:
        variables = {
            k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA_", "_HANDLER"))
        }
        code_paths = [os.path.abspath(p) for p in config.code_paths]
        python_path = os.pathsep.join([*code_paths, variables.get("PYTHONPATH", "")]).strip(
            os.pathsep
        )
        variables |= {
            "AWS_LAMBDA_RUNTIME_API": f"{self.host}:{env.port}",
            "AWS_LAMBDA_FUNCTION_NAME": config.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": env.id,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "_HANDLER": config.runtime_handler,
            "LAMBDA_TASK_ROOT": code_paths[0] if code_paths else os.getcwd(),
            "PYTHONPATH": python_path,
            "PYTHONUNBUFFERED": "1",
        }
        if self.sqs_endpoint_url is not None:
            variables.setdefault("AWS_ENDPOINT_URL_SQS", self.sqs_endpoint_url)
        return variables | dict(config.environment)

    async def _relay_logs(self, env: Environment) -> None:
        assert env.process is not None
        assert env.process.stdout is not None
        logger = logging.getLogger(f"aiofanout.local.{env.function.config.name}")
        async for line in env.process.stdout:
            logger.info("[%s] %s", env.id, line.decode(errors="replace").rstrip())

    async def _watch(self, env: Environment) -> None:
        """Wait for the process to end; fail what it was running; forget it."""
        assert env.process is not None
        code = await env.process.wait()
        env.dead = True
        invocation = env.current
        if invocation is not None and not invocation.result.done():
            if env.init_error is not None:
                invocation.result.set_result(env.init_error)
            else:
                invocation.result.set_result(
                    Result.error(
                        "Runtime.ExitError",
                        f"RequestId: {invocation.request_id} Error: Runtime exited with error: "
                        f"{_exit_reason(code)}",
                        invocation.request_id,
                    )
                )
        self._forget(env)

    def _forget(self, env: Environment) -> None:
        env.dead = True
        env.function.environments.pop(env.id, None)
        self.environments.pop(env.id, None)
        self._by_port.pop(env.port, None)
        if env.site is not None:
            site, env.site = env.site, None
            self._spawn(site.stop())
        with contextlib.suppress(ValueError):
            env.function.idle.remove(env)
        self._wake_one(env.function, None)  # a slot is free: a waiting invoke may start one

    async def _kill(self, env: Environment) -> None:
        env.dead = True
        env.inbox.put_nowait(None)  # ends a /next that is waiting
        process = env.process
        if process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            if process.returncode is None:
                await process.wait()
        for task in env.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        await asyncio.gather(*env.tasks, return_exceptions=True)
        self._forget(env)

    # -- the Runtime API ------------------------------------------------------------------

    def _env(self, request: web.Request) -> Environment:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        env = self._by_port.get(sockname[1]) if sockname else None
        if env is None:
            raise web.HTTPGone()
        return env

    async def _next(self, request: web.Request) -> web.Response:
        env = self._env(request)
        if env.ready_at is None:
            env.ready_at = time.monotonic()
            env.function.cold_starts.append(env.ready_at - env.spawned_at)
        invocation = await env.inbox.get()  # held open until work arrives
        if invocation is None:
            return web.Response(status=410, text="environment stopped")
        invocation.delivered.set()
        return web.Response(
            body=invocation.payload,
            content_type=JSON,  # without it awslambdaric crashes
            headers={
                "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": env.function.arn,
                "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
            },
        )

    def _settle(self, env: Environment, request_id: str, result: Result) -> None:
        invocation = env.current
        if invocation is None or invocation.request_id != request_id:
            return  # late answer of an invocation that timed out
        if invocation.hang:
            return  # injected: the answer never arrives, the timeout fires
        if invocation.crash and env.process is not None:
            env.process.kill()  # injected: the work ran, the environment died before answering
            return
        if not invocation.result.done():
            invocation.result.set_result(result)

    async def _response(self, request: web.Request) -> web.Response:
        env = self._env(request)
        self._settle(env, request.match_info["request_id"], Result(await request.read()))
        return web.json_response({"status": "OK"}, status=202)

    async def _error(self, request: web.Request) -> web.Response:
        env = self._env(request)
        body = await request.read()
        error_type = request.headers.get("Lambda-Runtime-Function-Error-Type") or _error_type(body)
        self._settle(env, request.match_info["request_id"], Result(body, error_type))
        return web.json_response({"status": "OK"}, status=202)

    async def _init_error(self, request: web.Request) -> web.Response:
        env = self._env(request)
        body = await request.read()
        env.init_error = Result(body, _error_type(body) or "Runtime.InitError")
        if env.current is not None and not env.current.result.done():
            env.current.result.set_result(env.init_error)
        return web.json_response({"status": "OK"}, status=202)

    # -- Event invocations ----------------------------------------------------------------

    async def _run_events(self, function: Function) -> None:
        while True:
            request_id, payload, attempt = await function.events.get()
            self._spawn(self._run_event(function, request_id, payload, attempt))

    async def _run_event(
        self, function: Function, request_id: str, payload: bytes, attempt: int
    ) -> None:
        # wait=True: a queued event waits for capacity, it is never throttled.
        result = await self.invoke(function.config.name, payload, request_id=request_id, wait=True)
        if result.error_type is None:
            return
        config = function.config
        if attempt <= config.event_retries:
            await asyncio.sleep(config.retry_delay(attempt))
            function.events.put_nowait((request_id, payload, attempt + 1))
            return
        if config.on_failure:
            await self._send_to_destination(function, request_id, payload, result, attempt)

    async def _send_to_destination(
        self, function: Function, request_id: str, payload: bytes, result: Result, attempts: int
    ) -> None:
        record = {
            "version": "1.0",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "requestContext": {
                "requestId": request_id,
                "functionArn": f"{function.arn}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": _json_or_text(payload),
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": _json_or_text(result.body),
        }
        sqs = await self._sqs_client()
        await sqs.send_message(QueueUrl=function.config.on_failure, MessageBody=json.dumps(record))


async def _first(event_wait: Any, result: asyncio.Future[Result]) -> None:
    """Return when the event is set or the result is in, whichever comes first."""
    waiter = asyncio.ensure_future(event_wait)
    try:
        await asyncio.wait([waiter, result], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask Linux to kill the environment if the runtime dies without stopping it."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal: {signal.Signals(-code).name.lower().removeprefix('sig')}"
    return f"exit status {code}"


def _error_type(body: bytes) -> str | None:
    with contextlib.suppress(ValueError, AttributeError):
        value = json.loads(body).get("errorType")
        return str(value) if value else None
    return None


def _json_or_text(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")


def _api_error(status: int, code: str, message: str, *, reason: str | None = None) -> web.Response:
    body: dict[str, Any] = {"Type": "User", "message": message}
    if reason:
        body["Reason"] = reason
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=JSON,
        headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())},
    )
