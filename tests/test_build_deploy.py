"""A zip ``build`` wrote, deployed to ``serve`` with the AWS CLI (``create-function --zip-file``).

The zip holds the worker, aiofanout and its core dependencies resolved for Lambda; a fan-out
through ``LambdaTarget`` gets every value back from it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiofanout import LambdaTarget, dispatch_many
from aiofanout.deploy import Stack, build
from aiofanout.testing import fake_aws_credentials, free_port

from .serving import serving
from .test_aws_cli import aws_cli, run_cli
from .test_build import CACHE

pytestmark = pytest.mark.slow  # pip, a zip, serve and the AWS CLI: real processes

__all__ = ["aws_cli"]  # the fixture, used here by name

WORKER = """
from aiofanout.worker import App

app = App("squares")


@app.task
def square(n: int) -> int:
    return n * n


lambda_handler = app.lambda_handler
"""

STACK = """
[[function]]
name = "squares"
handler = "squares.lambda_handler"
code = "code"
timeout = 10
extras = []                   # no replies: aiofanout's core (anyio, pydantic) is enough
"""


async def test_a_built_zip_deployed_with_the_aws_cli_answers_a_fan_out(
    aws_cli: Path, tmp_path: Path
) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "squares.py").write_text(WORKER)
    (tmp_path / "stack.toml").write_text(STACK)
    built = build(Stack.load(tmp_path / "stack.toml"), tmp_path / "build", cache_dir=CACHE)
    port = free_port()
    with serving("--port", str(port)) as served:
        created = run_cli(
            aws_cli,
            [
                *("--endpoint-url", served.lambda_url, "lambda", "create-function"),
                *("--function-name", "squares", "--runtime", "python3.11"),
                *("--role", "arn:aws:iam::123456789012:role/squares"),
                *("--handler", "squares.lambda_handler", "--timeout", "10"),
                *("--zip-file", f"fileb://{built.zips['squares']}"),
            ],
            tmp_path,
        )
        assert created.returncode == 0, created.stderr
        assert json.loads(created.stdout)["CodeSize"] == built.sizes["squares"][0]
        with fake_aws_credentials():
            target = LambdaTarget("squares", task="square", endpoint_url=served.lambda_url)
            result = await dispatch_many(target, range(20), concurrency=4, timeout=30)
    assert result.values() == [n * n for n in range(20)]
