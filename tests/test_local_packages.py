"""A function sees the packages AWS would give it: its code, and what the Lambda runtime provides.

Code from a zip (``CreateFunction``, ``UpdateFunctionCode``, inline or from S3) and a
``FunctionConfig(isolated=True)`` run with only their code directories and the Lambda Python
runtime's own packages (awslambdaric, boto3 and botocore with their dependencies), never the
virtualenv of the process running the local runtime: a zip that lacks a dependency fails with
``Runtime.ImportModuleError``, as it would on AWS. A ``FunctionConfig(code_paths=[...])`` of a
source directory (the development mode, the default) still sees the caller's packages.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import sys
import uuid
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import aiofanout
from aiofanout import LambdaTarget, TaskFailed, UsageError, dispatch_many
from aiofanout.local import FunctionConfig, LocalAws, LocalLambda

from .control_plane_helpers import call, client, unique

ROLE = "arn:aws:iam::123456789012:role/lambda-role"

#: A handler module that imports ``{module}`` when it loads (as a worker imports aiofanout)
#: and answers where things came from.
WORKER = """
import importlib.metadata, os, sys
import {module}


def handler(event, context):
    if event.get("client"):  # botocore's data files are reachable through the runtime's links
        import boto3 as sdk
        sdk.client("sqs", region_name="us-east-1")
    return {{
        "file": {module}.__file__,
        "version": importlib.metadata.version(event.get("distribution") or "boto3"),
        "path": sys.path,
        "task_root": os.environ["LAMBDA_TASK_ROOT"],
        "runtime_dir": os.environ.get("LAMBDA_RUNTIME_DIR"),
        "cwd": os.getcwd(),
        "exit": callable(exit),
    }}
"""

APP_WORKER = """
from aiofanout import App

app = App("isolated-app", secret=None)


@app.task
async def square(n: int) -> int:
    return n * n


lambda_handler = app.lambda_handler
"""


def zipped(module: str, *vendored: str) -> bytes:
    """A zip of ``worker.py`` importing ``module``, with the installed ``vendored`` packages."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("worker.py", WORKER.format(module=module))
        for name in vendored:
            dist = metadata.distribution(name)
            for file in dist.files or []:
                if file.parts[0] != ".." and "__pycache__" not in file.parts:
                    archive.write(str(dist.locate_file(file)), str(file))
    return buffer.getvalue()


def vendor(directory: Path, *roots: str) -> None:
    """Link ``roots`` and every distribution they require (extras left out) into ``directory``.

    What a build of the function would put beside its code; aiofanout itself (installed
    editable here) is linked from its source.
    """
    seen: set[str] = set()
    wanted = list(roots)
    while wanted:
        name = re.sub(r"[-_.]+", "-", wanted.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:  # required under a marker this Python does not meet
            continue
        for requirement in dist.requires or []:
            spec, _, marker = requirement.partition(";")
            if "extra" not in marker:
                wanted.append(re.split(r"[ <>=!~\[(;]", spec.strip(), maxsplit=1)[0])
        tops = {f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "__pycache__")}
        for top in tops:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not top.endswith(".pth") and name != "aiofanout":
                (directory / top).symlink_to(source)
    (directory / "aiofanout").symlink_to(Path(aiofanout.__file__).parent)


@pytest.fixture(scope="module")
def lam(aws: LocalAws) -> Any:
    return client("lambda", aws.lambda_endpoint_url)


async def create(lam: Any, code: dict[str, Any], handler: str = "worker.handler") -> str:
    name = unique()
    await call(
        lam.create_function,
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler=handler,
        Code=code,
        Timeout=30,
    )
    return name


async def invoke(lam: Any, name: str, event: dict[str, Any] | None = None) -> dict[str, Any]:
    """The function's answer; a function error is ``{"function_error": ..., **its payload}``."""
    response = await call(lam.invoke, FunctionName=name, Payload=json.dumps(event or {}))
    answer: dict[str, Any] = json.loads(response["Payload"].read())
    if "FunctionError" in response:
        answer["function_error"] = response["FunctionError"]
    return answer


def assert_import_module_error(answer: dict[str, Any], module: str) -> None:
    """AWS's answer to a handler module that cannot import ``module``."""
    assert answer.get("function_error") == "Unhandled", answer
    assert answer["errorType"] == "Runtime.ImportModuleError"
    assert answer["errorMessage"] == f"Unable to import module 'worker': No module named '{module}'"


# -- what the runtime provides (no environment) ------------------------------------------------


def test_the_runtime_provides_awslambdaric_boto3_and_what_they_need_only() -> None:
    from aiofanout.local._sandbox._provided import provided_distributions  # white-box

    names = {dist.metadata["Name"].lower().replace("_", "-") for dist in provided_distributions()}
    assert {"awslambdaric", "boto3", "botocore", "s3transfer", "jmespath"} <= names
    assert {"python-dateutil", "six", "urllib3", "simplejson", "snapshot-restore-py"} <= names
    assert not names & {"aiofanout", "aioboto3", "aiobotocore", "pydantic", "aiohttp", "moto"}


def test_an_isolated_function_needs_code_paths() -> None:
    with pytest.raises(UsageError, match="code_paths"):
        FunctionConfig("fn", "worker.handler", isolated=True)


# -- zips: what AWS runs ----------------------------------------------------------------------


@pytest.mark.parametrize("module", ["aiofanout", "pydantic", "annotated_types"])
@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.slow
async def test_a_zip_missing_a_dependency_fails_with_import_module_error(
    lam: Any, module: str
) -> None:
    name = await create(lam, {"ZipFile": zipped(module)})  # installed here, but not in the zip
    assert_import_module_error(await invoke(lam, name), module)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.slow
async def test_the_callers_pythonpath_does_not_reach_a_zip(
    lam: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pydantic

    site_packages = str(Path(pydantic.__file__).parents[1])
    monkeypatch.setenv("PYTHONPATH", site_packages)  # the development mode passes it on
    name = await create(lam, {"ZipFile": zipped("pydantic")})
    assert_import_module_error(await invoke(lam, name), "pydantic")


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.slow
async def test_the_same_zip_with_the_dependency_vendored_runs_it_from_the_zip(lam: Any) -> None:
    name = await create(lam, {"ZipFile": zipped("annotated_types", "annotated_types")})
    answer = await invoke(lam, name, {"distribution": "annotated_types"})
    assert "function_error" not in answer, answer
    task_root = answer["task_root"]
    assert answer["file"] == os.path.join(task_root, "annotated_types", "__init__.py")
    assert answer["version"] == metadata.version("annotated_types")  # its dist-info came too
    assert answer["cwd"] == task_root  # as /var/task on AWS


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.slow
async def test_an_isolated_function_sees_its_code_the_runtimes_packages_and_the_stdlib_only(
    lam: Any,
) -> None:
    name = await create(lam, {"ZipFile": zipped("boto3")})
    answer = await invoke(lam, name, {"client": True})
    assert "function_error" not in answer, answer
    task_root, runtime_dir = answer["task_root"], answer["runtime_dir"]
    assert answer["file"] == os.path.join(runtime_dir, "boto3", "__init__.py")  # provided
    assert answer["version"] == metadata.version("boto3")
    assert answer["exit"] is True  # the builtins site adds, without site-packages
    path = answer["path"]
    assert path[:2] == [task_root, runtime_dir]
    stdlib = os.path.dirname(os.__file__)
    for entry in path[2:]:  # the standard library: the zip, the directory, lib-dynload
        assert entry.startswith(sys.base_prefix), entry
        assert "site-packages" not in entry
        assert entry in (stdlib, os.path.join(stdlib, "lib-dynload")) or entry.endswith(".zip")


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.slow
async def test_code_from_s3_is_isolated_too(aws: LocalAws, lam: Any) -> None:
    s3 = client("s3", aws.endpoint_url)
    bucket = unique("code")
    await call(s3.create_bucket, Bucket=bucket)
    await call(s3.put_object, Bucket=bucket, Key="worker.zip", Body=zipped("aiofanout"))
    name = await create(lam, {"S3Bucket": bucket, "S3Key": "worker.zip"})
    assert_import_module_error(await invoke(lam, name), "aiofanout")


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.slow
async def test_update_function_code_isolates_a_function_that_ran_a_source_directory(
    aws: LocalAws, lam: Any, tmp_path: Path
) -> None:
    (tmp_path / "worker.py").write_text(WORKER.format(module="pydantic"))
    name = unique()
    aws.add_function(FunctionConfig(name, "worker.handler", code_paths=[str(tmp_path)]))
    answer = await invoke(lam, name, {"distribution": "pydantic"})
    assert answer["version"] == metadata.version("pydantic")  # the development mode: ours
    await call(lam.update_function_code, FunctionName=name, ZipFile=zipped("pydantic"))
    assert_import_module_error(await invoke(lam, name), "pydantic")


# -- from Python: the development mode, and isolation one option away -------------------------


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.slow
async def test_the_development_mode_sees_the_callers_packages(
    aws: LocalAws, lam: Any, tmp_path: Path
) -> None:
    (tmp_path / "worker.py").write_text(WORKER.format(module="pydantic"))
    name = unique()
    aws.add_function(FunctionConfig(name, "worker.handler", code_paths=[str(tmp_path)]))
    answer = await invoke(lam, name, {"distribution": "pydantic"})
    import pydantic

    assert answer["file"] == pydantic.__file__  # this process's own
    assert answer["path"][0] == str(tmp_path)  # the code first, not the runtime's bootstrap
    assert answer["runtime_dir"] is None


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.slow
async def test_isolated_from_python_runs_an_app_only_with_aiofanout_vendored(
    aws: LocalAws, tmp_path: Path
) -> None:
    bare, built = tmp_path / "bare", tmp_path / "built"
    for directory in (bare, built):
        directory.mkdir()
        (directory / "worker.py").write_text(APP_WORKER)
    vendor(built, "aiofanout")
    results = {}
    for directory in (bare, built):
        name = f"fn-{uuid.uuid4().hex[:8]}"
        aws.add_function(
            FunctionConfig(
                name, "worker.lambda_handler", code_paths=[str(directory)], isolated=True
            )
        )
        target = LambdaTarget(
            name, task="square", endpoint_url=aws.lambda_endpoint_url, region_name="us-east-1"
        )
        results[directory.name] = await dispatch_many(target, [3, 4], concurrency=2, retry=1)
    assert results["built"].values() == [9, 16]
    error = results["bare"][0].error
    assert isinstance(error, TaskFailed)
    assert error.remote_type == "Runtime.ImportModuleError"
    assert error.message == "Unable to import module 'worker': No module named 'aiofanout'"


@pytest.mark.asyncio
@pytest.mark.slow
async def test_the_runtimes_directory_is_removed_when_the_runtime_stops(tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text(WORKER.format(module="boto3"))
    async with LocalLambda() as runtime:
        runtime.add_function(
            FunctionConfig("fn", "worker.handler", code_paths=[str(tmp_path)], isolated=True)
        )
        result = await runtime.invoke("fn", b"{}")
        assert result.error_type is None, result.body
        runtime_dir = Path(json.loads(result.body)["runtime_dir"])
        assert await asyncio.to_thread((runtime_dir / "boto3").is_symlink)
    assert not await asyncio.to_thread(runtime_dir.exists)
    assert await asyncio.to_thread((tmp_path / "worker.py").exists)  # what it ran stays
