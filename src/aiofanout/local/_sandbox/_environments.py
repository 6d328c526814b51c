"""Execution environments: one awslambdaric process each, started, watched, killed.

An environment polls the Runtime API on a port of its own, so the runtime knows an environment
by the port a request arrived on, and under a secret of its own (``_runtime_bootstrap.py``
hands it over), so no other local process can take or answer the environment's invocations.
Its process runs in its own process group (a kill reaches any fork) and asks Linux to kill it
if the runtime dies without stopping it. Its output is relayed to the
``aiofanout.local.<function>`` logger with the function name and the request id, and kept per
invocation for ``LogType: Tail``.
An environment belongs to its function's pool (its :class:`Owner`), which counts it from the
start and hears of its first poll and of its end through callbacks; it keeps the config it was
started with, so it never reaches back into its function. A process that ends fails the
invocation it was running (``Runtime.ExitError``, or the init error it reported) and frees its
slot in the pool.

What a function's Python sees depends on its config's ``isolated`` (:func:`python_flags`).
Isolated (code from a zip, always): Python starts without ``site``, its path only the
function's code directories and the directory of what the Lambda runtime provides
(``_provided``), its working directory its code, as ``/var/task`` on AWS: a missing dependency
fails the import as it would there. The development mode (a source directory from Python, the
default) puts the code directories in front of this process's own packages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from ..._log_fields import library_logger
from .._account import MOTO_SERVICES, REGION
from ._invocation import Invocation, Result
from ._provided import RuntimeProvided

if TYPE_CHECKING:
    from .._background import Background
    from .._config import FunctionConfig


class Owner(Protocol):
    """Who keeps an environment (its function's :class:`Pool`) and what it is told."""

    def enlist(self, env: Environment, /) -> None:
        """Count ``env`` against the limit, before its process starts."""

    def started(self, seconds: float, /) -> None:
        """An environment took its first poll, ``seconds`` after its spawn (a cold start)."""

    def remove(self, env: Environment, /) -> None:
        """``env`` ended: its slot is free."""


@dataclass(eq=False)
class Environment:
    """One execution environment: an awslambdaric process and its Runtime API state."""

    id: str
    config: FunctionConfig  # its function's config (and code) when it started
    arn: str  # its function's ARN, as the Runtime API tells the handler
    generation: int  # its function's generation (config and code) when it started
    on_ready: Callable[[float], None]  # told its cold start (seconds) on its first poll
    on_end: Callable[[Environment], None]  # told it ended: its pool frees its slot
    process: asyncio.subprocess.Process | None = None
    site: web.TCPSite | None = None
    port: int = 0
    inbox: asyncio.Queue[Invocation | None] = field(default_factory=asyncio.Queue)
    current: Invocation | None = None
    spawned_at: float = field(default_factory=time.monotonic)
    ready_at: float | None = None
    reported_init: bool = False  # its init went into a REPORT line (its first invocation's)
    init_error: Result | None = None
    dead: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    #: What every Runtime API request of this environment starts its path with.
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    log: list[str] = field(default_factory=list)  # the current invocation's output lines

    def ready(self) -> None:
        """Its Runtime API was polled: the first poll ends its init phase (a cold start)."""
        if self.ready_at is None:
            self.ready_at = time.monotonic()
            self.on_ready(self.ready_at - self.spawned_at)

    def deliver(self, invocation: Invocation) -> None:
        """Hand ``invocation`` to the environment's next (or waiting) ``/next`` poll."""
        self.current = invocation
        self.log = []
        self.inbox.put_nowait(invocation)

    def take_log(self) -> str:
        """The output of the invocation that just ended (what ``LogType: Tail`` returns)."""
        lines, self.log = self.log, []
        return "".join(f"{line}\n" for line in lines)


class Environments:
    """Every execution environment of one runtime: start, watch, kill; found by port."""

    def __init__(
        self, *, host: str, python: str, sqs_endpoint_url: str | None, background: Background
    ) -> None:
        self.host = host
        self.python = python
        self.sqs_endpoint_url = sqs_endpoint_url
        self.runner: web.AppRunner | None = None  # serves the Runtime API; set by the runtime
        self.lambda_endpoint_url: str | None = None  # the Invoke API; set by the runtime
        self.by_id: dict[str, Environment] = {}
        self._by_port: dict[int, Environment] = {}
        self._background = background
        #: What the Lambda runtime provides an isolated function; removed by :meth:`cleanup`.
        self.provided = RuntimeProvided()

    def at_port(self, port: int) -> Environment | None:
        """The environment whose Runtime API listens on ``port``."""
        return self._by_port.get(port)

    def pids(self) -> list[int]:
        """Process ids of the running environments."""
        return [e.process.pid for e in self.by_id.values() if e.process is not None]

    async def start(
        self, config: FunctionConfig, *, arn: str, generation: int, owner: Owner
    ) -> Environment:
        """Start a new environment of a function (a cold start), kept by ``owner``; return it."""
        env = Environment(
            uuid.uuid4().hex[:12], config, arn, generation, owner.started, owner.remove
        )
        owner.enlist(env)
        self.by_id[env.id] = env
        try:
            await self._listen(env)
            env.process = await self._spawn_process(env)
        except BaseException:
            self._forget(env)
            raise
        env.tasks.append(self._background.spawn(self._relay_logs(env)))
        env.tasks.append(self._background.spawn(self._watch(env)))
        return env

    async def _listen(self, env: Environment) -> None:
        assert self.runner is not None, "start the runtime first"
        env.site = web.TCPSite(self.runner, self.host, 0)
        await env.site.start()
        env.port = env.site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._by_port[env.port] = env

    async def _spawn_process(self, env: Environment) -> asyncio.subprocess.Process:
        config = env.config
        runtime_dir = self.provided.directory() if config.isolated else None
        variables = environment_variables(
            config, env.id, f"{self.host}:{env.port}", self.sqs_endpoint_url, runtime_dir
        )
        if self.lambda_endpoint_url is not None:  # a function invoking functions reaches us
            variables.setdefault("AWS_ENDPOINT_URL_LAMBDA", self.lambda_endpoint_url)
        process = await asyncio.create_subprocess_exec(
            self.python,
            *python_flags(config),
            BOOTSTRAP,
            config.runtime_handler,
            env=variables,
            cwd=task_root(config) if config.isolated else None,  # as /var/task on AWS
            stdin=asyncio.subprocess.PIPE,  # the secret, then end of file (as /dev/null)
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            start_new_session=True,  # its own process group: a kill reaches any fork
        )
        assert process.stdin is not None
        process.stdin.write(f"{env.secret}\n".encode())
        with contextlib.suppress(ConnectionError):  # it died at once: _watch reports it
            await process.stdin.drain()
        process.stdin.close()
        return process

    async def _relay_logs(self, env: Environment) -> None:
        assert env.process is not None
        assert env.process.stdout is not None
        name = env.config.name
        logger = library_logger(f"aiofanout.local.{name}")
        async for raw in env.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            invocation = env.current
            if invocation is not None:
                env.log.append(line)
            request_id = invocation.request_id if invocation is not None else "init"
            logger.info("%s %s %s", name, request_id, line)

    async def _watch(self, env: Environment) -> None:
        """Wait for the process to end; fail what it was running; forget it."""
        assert env.process is not None
        code = await env.process.wait()
        env.dead = True
        invocation = env.current
        if invocation is not None and not invocation.result.done():
            invocation.result.set_result(env.init_error or _exit_error(invocation, code))
        self._forget(env)

    async def kill(self, env: Environment) -> None:
        """Kill the environment's process group and wait until it is gone."""
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

    async def kill_all(self) -> None:
        """Kill every environment (their sites stop in background tasks)."""
        await asyncio.gather(*(self.kill(env) for env in list(self.by_id.values())))

    def cleanup(self) -> None:
        """Remove what the environments were given (kill them first)."""
        self.provided.cleanup()

    def _forget(self, env: Environment) -> None:
        env.dead = True
        self.by_id.pop(env.id, None)
        self._by_port.pop(env.port, None)
        if env.site is not None:
            site, env.site = env.site, None
            self._background.spawn(site.stop())
        env.on_end(env)


def environment_variables(
    config: FunctionConfig,
    log_stream: str,
    runtime_api: str,
    sqs_endpoint_url: str | None,
    runtime_dir: str | None = None,
) -> dict[str, str]:
    """The variables of an environment: this process's, minus Lambda's own, plus the function's.

    ``runtime_dir``: an isolated function's directory of what the Lambda runtime provides.
    """
    # What AWS gives a function, not serve's own environment (a token there must not leak):
    # only what a Python process needs to start and import awslambdaric.
    variables = {k: v for k, v in os.environ.items() if k in _INHERITED}
    code_paths = [os.path.abspath(p) for p in config.code_paths]
    if runtime_dir is None:  # the development mode: the code in front of this process's path
        python_path = [*code_paths, variables.get("PYTHONPATH", "")]
    else:  # isolated: the code, then the runtime's own (/var/task, then /var/runtime on AWS)
        python_path = [*code_paths, runtime_dir]
        variables.pop("VIRTUAL_ENV", None)  # the function is in no virtualenv of this process
        variables["LAMBDA_RUNTIME_DIR"] = runtime_dir
    variables |= {
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": config.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "_HANDLER": config.runtime_handler,
        "LAMBDA_TASK_ROOT": task_root(config),
        "PYTHONPATH": os.pathsep.join(python_path).strip(os.pathsep),
        "PYTHONUNBUFFERED": "1",
    }
    if sqs_endpoint_url is not None:  # every service the moto server serves
        variables["AWS_ENDPOINT_URL"] = sqs_endpoint_url
        for service in MOTO_SERVICES:
            variables[f"AWS_ENDPOINT_URL_{service}"] = sqs_endpoint_url
    return variables | dict(config.environment)


def task_root(config: FunctionConfig) -> str:
    """The function's first code directory (``LAMBDA_TASK_ROOT``, ``/var/task`` on AWS)."""
    return os.path.abspath(config.code_paths[0]) if config.code_paths else os.getcwd()


#: The script an environment runs: awslambdaric, with the environment's secret.
BOOTSTRAP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_runtime_bootstrap.py")


def python_flags(config: FunctionConfig) -> tuple[str, ...]:
    """The options of an environment's Python.

    Never the bootstrap's directory in front of the path (``-P``): its modules would shadow the
    function's own (a ``_pool.py`` of yours). Isolated, no ``site`` either (``-S``): no
    site-packages and no ``.pth`` files, so not even an editable install of this package.
    """
    return ("-S", "-P") if config.isolated else ("-P",)


# The variables of serve's environment a function's Python process needs to start.
_INHERITED = frozenset(
    {"PATH", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME"}
    # AWS hands a function its role's credentials: the local runtime hands it serve's.
    | {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
)


def _exit_error(invocation: Invocation, code: int | None) -> Result:
    message = (
        f"RequestId: {invocation.request_id} Error: Runtime exited with error: {_exit_reason(code)}"
    )
    return Result.error("Runtime.ExitError", message, invocation.request_id)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal: {signal.Signals(-code).name.lower().removeprefix('sig')}"
    return f"exit status {code}"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask Linux to kill the environment if the runtime dies without stopping it."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
