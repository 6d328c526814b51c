"""``AWS::Lambda::Function`` (what a SAM ``AWS::Serverless::Function`` expands to) locally.

A function becomes a :class:`~aiofanout.local.FunctionConfig` registered with the runtime, as
``CreateFunction`` registers one. Its code is one of:

- a local path, relative to the template's directory, to a directory or a zip (what SAM's
  ``CodeUri`` and ``aws cloudformation package``'s ``Code: ./dir`` name before packaging);
- ``Code.ZipFile``, inline Python source, written to ``index.py`` as CloudFormation does.

A zip and inline code are unpacked by the runtime's code store, as an uploaded zip is. Code in
S3 (``Code.S3Bucket``, ``CodeUri: s3://...``) and images are refused: point ``Code`` at the local
directory or zip instead. ``Ref`` gives the function's name; ``Fn::GetAtt ... Arn`` its ARN.

Every function runs isolated, as AWS runs the package: its ``sys.path`` is its code and what the
Lambda Python runtime provides, never ``serve``'s virtualenv, so a package that lacks a
dependency fails with ``Runtime.ImportModuleError`` here as there. A directory's code may run in
the development mode instead (``Template.deploy(aws, isolated=False)``: the directory in front of
this process's packages); a zip is isolated either way, as everywhere in the local runtime.
"""

from __future__ import annotations

import base64
import io
import sys
import zipfile
from typing import Any

from ..._errors import UsageError
from ..._log_fields import library_logger
from .._account import function_arn
from .._code import Code, CodeError
from .._config import FunctionConfig
from .._control_plane._functions_api import (
    MEMORY_RANGE,
    TIMEOUT_RANGE,
    UNRESERVED_CONCURRENCY,
)
from .._functions import Deployment, Function
from ._intrinsics import Created, text
from ._kinds import Context, Kind, Resource, integer, mapping

log = library_logger("aiofanout.local")
LOCAL_RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
IAM = "not enforced locally: functions run with the stack's fake credentials"


async def create_function(ctx: Context, resource: Resource) -> Created:
    properties = ctx.properties(resource)
    where = f"{resource.where}.Properties"
    name = text(properties.get("FunctionName") or ctx.physical_name(resource, limit=64), where)
    runtime = _runtime(properties, where)
    handler = text(properties.get("Handler", ""), f"{where}.Handler")
    code, zipped = await _code(ctx, properties.get("Code"), f"{where}.Code")
    reserved = integer(properties, "ReservedConcurrentExecutions", where, (1, 1000))
    _recursive_loop(properties, where)
    config = function_config(
        name,
        handler,
        code,
        timeout=integer(properties, "Timeout", where, TIMEOUT_RANGE) or 3,
        memory=integer(properties, "MemorySize", where, MEMORY_RANGE) or 128,
        environment=_variables(properties.get("Environment"), f"{where}.Environment"),
        reserved=reserved,
        isolated=zipped or ctx.isolated,
    )
    function = Function.create(config, reserved=reserved is not None)
    function.deployment = Deployment(
        runtime=runtime, code_sha256=code.sha256, code_size=code.size, code_archive=code.archive
    )
    ctx.aws.runtime.control.add(function)
    ctx.created("function", resource, f"{name} ({handler}, {runtime}, {config.timeout:g} s)")
    return Created(resource.type, name, {"Arn": function_arn(name)})


def function_config(
    name: str,
    handler: str,
    code: Code,
    *,
    timeout: int,
    memory: int,
    environment: dict[str, str],
    reserved: int | None,
    isolated: bool,
) -> FunctionConfig:
    """The one place a template's function becomes a :class:`FunctionConfig`."""
    return FunctionConfig(
        name,
        handler,
        timeout=float(timeout),
        memory=memory,
        environment=environment,
        reserved_concurrency=reserved or UNRESERVED_CONCURRENCY,
        code_paths=[code.directory],
        isolated=isolated,
    )


def _runtime(properties: dict[str, Any], where: str) -> str:
    if text(properties.get("PackageType", "Zip"), where) != "Zip":
        raise UsageError(f"{where}.PackageType: only Zip functions run locally (no images)")
    runtime = text(properties.get("Runtime", LOCAL_RUNTIME), f"{where}.Runtime")
    if not runtime.startswith("python3."):
        raise UsageError(
            f"{where}.Runtime: {runtime!r}: the local runtime runs Python functions only "
            "(python3.x)"
        )
    if runtime != LOCAL_RUNTIME:
        log.info("%s.Runtime: %s runs on this machine's %s", where, runtime, LOCAL_RUNTIME)
    return runtime


def _recursive_loop(properties: dict[str, Any], where: str) -> None:
    """``RecursiveLoop`` is checked; the local runtime stops no loop either way (see README)."""
    value = text(properties.get("RecursiveLoop", "Terminate"), f"{where}.RecursiveLoop")
    if value not in ("Allow", "Terminate"):
        raise UsageError(f"{where}.RecursiveLoop: Allow or Terminate, got {value!r}")


def _variables(environment: Any, where: str) -> dict[str, str]:
    if environment is None:
        return {}
    variables = mapping(mapping(environment, where).get("Variables") or {}, f"{where}.Variables")
    return {key: text(value, f"{where}.Variables.{key}") for key, value in variables.items()}


async def _code(ctx: Context, code: Any, where: str) -> tuple[Code, bool]:
    """The function's code, unpacked where it needs to be, and whether it came from a zip."""
    if isinstance(code, str):
        path = (ctx.base / code).resolve()
        if path.is_dir():
            return Code(str(path), "", 0), False  # used in place
        if path.is_file():
            return await _unpack(ctx, path.read_bytes(), where), True
        raise UsageError(f"{where}: {code!r} is not a directory or a zip next to the template")
    if isinstance(code, dict) and "ZipFile" in code:
        return await _unpack(ctx, _inline_zip(text(code["ZipFile"], where)), where), True
    if isinstance(code, dict) and ("S3Bucket" in code or "ImageUri" in code):
        raise UsageError(
            f"{where}: code in S3 or an image is not read locally; point it at the local "
            "directory or zip (as before `aws cloudformation package`)"
        )
    raise UsageError(f"{where}: a function needs code: a local directory or zip, or ZipFile")


def _inline_zip(source: str) -> bytes:
    """CloudFormation writes inline Python code to ``index.py``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", source)
    return buffer.getvalue()


async def _unpack(ctx: Context, data: bytes, where: str) -> Code:
    try:
        return await ctx.aws.runtime.code.unpack({"ZipFile": base64.b64encode(data).decode()})
    except CodeError as exc:
        raise UsageError(f"{where}: {exc}") from exc


FUNCTION = Kind(
    "AWS::Lambda::Function",
    "function",
    create_function,
    frozenset(
        {
            "Code",
            "Environment",
            "FunctionName",
            "Handler",
            "MemorySize",
            "PackageType",
            "RecursiveLoop",
            "ReservedConcurrentExecutions",
            "Runtime",
            "Timeout",
        }
    ),
    {
        "Role": IAM,
        "Architectures": "runs on this machine's architecture",
        "Description": "kept in the template only",
        "TracingConfig": "no X-Ray locally",
        "VpcConfig": "no VPC locally: a function reaches what this machine reaches",
        "LoggingConfig": "logs go to serve's output",
        "EphemeralStorage": "not enforced locally",
        "KmsKeyArn": "not enforced locally",
        "SnapStart": "not enforced locally",
        "RuntimeManagementConfig": "not enforced locally",
        "CodeSigningConfigArn": "not enforced locally",
        "Tags": "not applied locally",
    },
)
