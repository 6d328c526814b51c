"""The function operations of the Lambda API: create, get, list, update, delete.

Routes and shapes follow botocore's service model for ``lambda`` 2015-03-31: ``CreateFunction``
is ``POST /2015-03-31/functions`` (201), ``GetFunction`` ``GET .../functions/{name}``,
``GetFunctionConfiguration`` ``GET .../{name}/configuration``, ``ListFunctions`` ``GET
.../functions``, ``UpdateFunctionConfiguration`` ``PUT .../{name}/configuration``,
``UpdateFunctionCode`` ``PUT .../{name}/code``, ``DeleteFunction`` ``DELETE .../{name}`` (204).
Only ``python3.x`` zip functions; only the ``$LATEST`` qualifier. A zip's function is
isolated (``FunctionConfig.isolated``): it sees its code and what the Lambda runtime provides.

As on AWS, a new function is ``Pending`` (``StateReasonCode: Creating``) and then ``Active``;
an update ``InProgress`` and then ``Successful``, so boto3's ``function_active_v2`` and
``function_updated_v2`` waiters work; the change takes effect as soon as the answer is sent
(new environments start with it). ``GetFunction``'s ``Code.Location`` is a URL of this runtime
that downloads the function's zip, as AWS's presigned S3 URL does (its secret is in the path).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import os
import secrets
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from aiohttp import web

from .._account import REGION
from .._code import UNZIPPED_LIMIT, CodeError, CodeTooLarge
from .._config import FunctionConfig
from .._functions import Deployment, Function, with_changes
from ._http import (
    LATEST,
    ApiError,
    address_of,
    body_of,
    check_name,
    invalid,
    lambda_time,
    lookup,
    page,
    reply,
    shown,
    too_large,
    usage_errors_as_invalid,
    validation,
)

if TYPE_CHECKING:
    from .._code import Code, CodeStore
    from .._event_sources import Mappings
    from .._functions import Control, FunctionRegistry

#: Where ``Code.Location`` downloads a function's zip from (its secret is the path).
CODE_DOWNLOAD = "/code/{token}"
#: Environments a function with no reserved concurrency may have at once (AWS: the account's
#: unreserved pool, 1,000 by default; a laptop is smaller).
UNRESERVED_CONCURRENCY = 10
#: (lowest, highest) ``Timeout`` (seconds) and ``MemorySize`` (MB), as AWS allows.
TIMEOUT_RANGE = (1, 900)
MEMORY_RANGE = (128, 10240)


class FunctionsApi:
    """``CreateFunction`` ... ``DeleteFunction`` over a runtime's functions, and their code."""

    def __init__(
        self, functions: FunctionRegistry, control: Control, code: CodeStore, mappings: Mappings
    ) -> None:
        self._functions = functions
        self._control = control
        self._code = code
        self._mappings = mappings

    async def create_function(self, request: web.Request) -> web.Response:
        body = await body_of(request)
        name = check_name(body.get("FunctionName", ""))
        if self._functions.find(name) is not None:
            raise ApiError(409, "ResourceConflictException", f"Function already exist: {name}")
        _check_package(body)
        code = await self._unpack(body.get("Code") or {}, "CreateFunction")
        with usage_errors_as_invalid():
            config = FunctionConfig(
                name,
                str(body.get("Handler", "")),
                code_paths=[code.directory],
                isolated=True,  # a zip runs with only what it holds and the runtime gives
                reserved_concurrency=UNRESERVED_CONCURRENCY,
                **_settings(body),
            )
        function = Function.create(config, reserved=False)
        function.deployment = Deployment(runtime=_runtime_of(body))
        _record_code(function.deployment, code)
        _describe(function.deployment, body)
        self._control.add(function)
        function.deployment.begin(creating=True)  # Pending, Active once the answer is sent
        answer = configuration(function)
        _settle_soon(function.deployment)
        return reply(answer, status=201)

    async def get_function(self, request: web.Request) -> web.Response:
        function = lookup(self._functions, request)
        location = f"{request.scheme}://{request.host}/code/{function.deployment.code_token}"
        answer: dict[str, Any] = {
            "Configuration": configuration(function),
            "Code": {"RepositoryType": "S3", "Location": location},
        }
        if function.reserved is not None:
            answer["Concurrency"] = {"ReservedConcurrentExecutions": function.reserved}
        return reply(answer)

    async def get_configuration(self, request: web.Request) -> web.Response:
        return reply(configuration(lookup(self._functions, request)))

    async def list_functions(self, request: web.Request) -> web.Response:
        functions = [configuration(f) for f in self._functions.all()]
        return page(request, "Functions", functions, max_items=50)

    async def update_config(self, request: web.Request) -> web.Response:
        function = lookup(self._functions, request)
        body = await body_of(request)
        changes = _settings(body)
        if "Handler" in body:
            changes["handler"] = str(body["Handler"])
        with usage_errors_as_invalid():
            config = with_changes(function.config, **changes)
        if "Runtime" in body:
            function.deployment.runtime = _runtime_of(body)
        _describe(function.deployment, body)
        return self._updated(function, config)

    async def update_function_code(self, request: web.Request) -> web.Response:
        function = lookup(self._functions, request)
        code = await self._unpack(await body_of(request), "UpdateFunctionCode")
        _record_code(function.deployment, code)
        # From now on the code is a zip, also for a function that ran a source directory.
        config = with_changes(function.config, code_paths=[code.directory], isolated=True)
        return self._updated(function, config)

    def _updated(self, function: Function, config: FunctionConfig) -> web.Response:
        """Apply an update: ``InProgress`` in the answer, ``Successful`` once it took effect."""
        self._control.reconfigure(function, config)
        function.deployment.begin(creating=False)
        answer = configuration(function)
        _settle_soon(function.deployment)
        return reply(answer)

    async def delete_function(self, request: web.Request) -> web.Response:
        function = lookup(self._functions, request)
        if address_of(request)[1] == LATEST:  # AWS deletes versions by qualifier, never $LATEST
            raise invalid("$LATEST version cannot be deleted without deleting the function.")
        self._control.remove(function.name)
        self._mappings.disable_for(function.name)
        return reply(None, status=204)

    async def download_code(self, request: web.Request) -> web.StreamResponse:
        """``Code.Location``: the function's zip (a source directory zipped as it is now).

        As AWS's presigned URL, it needs no credentials: its secret is the path.
        """
        token = request.match_info["token"]
        found = [f for f in self._functions.all() if f.deployment.code_token == token]
        if not found:
            return web.Response(status=404, text="no code at this address (it expired)")
        archive = found[0].deployment.code_archive
        try:
            data = await _zipped(found[0]) if archive is None else await _read(archive)
        except CodeTooLarge as exc:
            return web.Response(status=413, text=f"the code directory is over {exc.limit} bytes")
        return web.Response(body=data, content_type="application/zip")

    async def _unpack(self, code: dict[str, Any], operation: str) -> Code:
        """Unpack uploaded code; what is refused is answered as AWS answers ``operation``."""
        try:
            return await self._code.unpack(code)
        except CodeTooLarge as exc:
            raise too_large(exc.limit, operation) from exc
        except CodeError as exc:
            raise invalid(str(exc)) from exc


def configuration(function: Function) -> dict[str, Any]:
    """The function's ``FunctionConfiguration``, as the API returns it (keys as AWS sends)."""
    config, deployment = function.config, function.deployment
    shape: dict[str, Any] = {
        "FunctionName": config.name,
        "FunctionArn": function.arn,
        "Runtime": deployment.runtime,
        "Role": deployment.role,
        "Handler": config.handler,
        "CodeSize": deployment.code_size,
        "Description": deployment.description,
        "Timeout": int(config.timeout) if float(config.timeout).is_integer() else config.timeout,
        "MemorySize": config.memory,
        "LastModified": lambda_time(deployment.last_modified),
        "CodeSha256": deployment.code_sha256,
        "Version": LATEST,
        "Environment": {"Variables": dict(config.environment)},
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": deployment.revision_id,
        "State": deployment.state,
        "PackageType": "Zip",
        "Architectures": ["x86_64"],
        "EphemeralStorage": {"Size": 512},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "RuntimeVersionConfig": {"RuntimeVersionArn": _runtime_version_arn(deployment.runtime)},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{config.name}"},
    }
    return shape | _status(deployment)


def _status(deployment: Deployment) -> dict[str, str]:
    """The state keys AWS sends beside ``State`` (what a waiter and a poller read)."""
    if deployment.state == "Pending":
        return {"StateReason": _BEING_CREATED, "StateReasonCode": "Creating"}
    status = {"LastUpdateStatus": deployment.last_update_status or "Successful"}
    if deployment.last_update_status == "InProgress":  # AWS's words, "created" on an update too
        status["LastUpdateStatusReason"] = _BEING_CREATED
        status["LastUpdateStatusReasonCode"] = "Creating"
    return status


_BEING_CREATED = "The function is being created."


def _settle_soon(deployment: Deployment) -> None:
    """``Active``/``Successful`` once the answer is sent: new environments take the change."""
    asyncio.get_running_loop().call_soon(deployment.settle)


@functools.cache
def runtimes() -> list[str]:
    """The runtimes botocore's service model knows (its ``Runtime`` enum)."""
    from botocore.session import get_session

    model = get_session().get_service_model("lambda")
    return list(model.shape_for("Runtime").metadata["enum"])


def _runtime_version_arn(runtime: str) -> str:
    """``RuntimeVersionArn``, for the Python that runs the environments (AWS: a hash per build)."""
    build = hashlib.sha256(f"{runtime} {sys.version}".encode()).hexdigest()
    return f"arn:aws:lambda:{REGION}::runtime:{build}"


def _record_code(deployment: Deployment, code: Code) -> None:
    deployment.code_sha256, deployment.code_size = code.sha256, code.size
    deployment.code_archive = code.archive
    deployment.code_token = secrets.token_urlsafe(24)  # the old URL stops working, as it expires


async def _read(path: str) -> bytes:
    return await anyio.to_thread.run_sync(Path(path).read_bytes)


async def _zipped(function: Function) -> bytes:
    """A source directory's code, zipped in a thread (a large tree takes a while)."""
    root = Path((list(function.config.code_paths) or ["."])[0])
    return await anyio.to_thread.run_sync(_zip_directory, root)


def _zip_directory(root: Path) -> bytes:
    """``root`` zipped, without hidden entries (``.git``, ``.venv``) or ``__pycache__``.

    Past Lambda's unzipped limit it stops (:class:`CodeTooLarge`): a directory that large is
    not a function's code (``serve``'s default code path is the working directory).
    """
    buffer, total = io.BytesIO(), 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder, folders, files in os.walk(root):
            folders[:] = sorted(d for d in folders if not _skipped(d))  # never walked into
            for name in sorted(f for f in files if not _skipped(f)):
                path = Path(folder, name)
                total += path.stat().st_size
                if total > UNZIPPED_LIMIT:
                    raise CodeTooLarge(UNZIPPED_LIMIT)
                archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()


def _skipped(name: str) -> bool:
    return name.startswith(".") or name == "__pycache__"


def _settings(body: dict[str, Any]) -> dict[str, Any]:
    """The ``FunctionConfig`` fields a Create/UpdateFunctionConfiguration request sets."""
    settings: dict[str, Any] = {}
    if "Timeout" in body:
        settings["timeout"] = float(_integer(body, "Timeout", TIMEOUT_RANGE))
    if "MemorySize" in body:
        settings["memory"] = _integer(body, "MemorySize", MEMORY_RANGE)
    if "Environment" in body:
        settings["environment"] = _variables(body["Environment"])
    return settings


def _integer(body: dict[str, Any], key: str, bounds: tuple[int, int]) -> int:
    """``body[key]``, an integer within ``bounds`` (400 naming the field otherwise)."""
    value, field = body[key], key[0].lower() + key[1:]
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(f"Value '{shown(value)}' at '{field}' must be an integer")
    low, high = bounds
    if value < low:
        raise validation(field, value, f"Member must have value greater than or equal to {low}")
    if value > high:
        raise validation(field, value, f"Member must have value less than or equal to {high}")
    return value


def _variables(environment: Any) -> dict[str, str]:
    """``Environment.Variables``: an object of strings (400 naming the field otherwise)."""
    if environment is None:
        return {}
    if not isinstance(environment, dict):
        raise invalid("Environment must be an object with Variables")
    variables = environment.get("Variables") or {}
    if not isinstance(variables, dict):
        raise invalid("Environment.Variables must be an object of strings")
    for key, value in variables.items():
        if not isinstance(value, str):
            raise invalid(f"The value of environment variable '{shown(key)}' must be a string")
    return dict(variables)


def _describe(deployment: Deployment, body: dict[str, Any]) -> None:
    if "Role" in body:
        deployment.role = str(body["Role"])
    if "Description" in body:
        deployment.description = str(body["Description"])


def _check_package(body: dict[str, Any]) -> None:
    if body.get("PackageType", "Zip") != "Zip":
        raise invalid("The local Lambda runtime runs Zip functions only (no container images)")
    _runtime_of(body)
    if not body.get("Handler"):
        raise invalid("Handler is required for a Zip function")


def _runtime_of(body: dict[str, Any]) -> str:
    """The ``Runtime``: one of the model's (AWS's words otherwise), and ``python3.x`` here."""
    runtime = str(body.get("Runtime", ""))
    known = runtimes()
    if runtime not in known:
        raise invalid(
            f"Value {shown(runtime)} at 'runtime' failed to satisfy constraint: Member must "
            f"satisfy enum value set: [{', '.join(known)}] or be a valid ARN"
        )
    if not runtime.startswith("python3."):
        raise invalid(
            f"Value {runtime!r} at 'runtime' is not supported here: the local Lambda runtime "
            "runs python3.x functions"
        )
    return runtime
