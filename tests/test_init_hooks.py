"""``@app.on_init``: once per execution environment, before the first envelope; a failing hook
is the environment's init error, and the next environment runs it again (real awslambdaric
processes of the local runtime)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from aiofanout import LambdaTarget, TaskFailed, dispatch_many
from aiofanout.errors import InitFailed
from aiofanout.local import FunctionConfig, LocalAws, stack
from aiofanout.testing import LambdaContext
from aiofanout.worker import App

pytestmark = pytest.mark.asyncio(loop_scope="module")

FUNCTIONS = str(Path(__file__).with_name("lambda_functions"))
HANDLER = "peers_worker.lambda_handler"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def aws(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalAws]:
    marker = tmp_path_factory.mktemp("init") / "fail-once"
    marker.write_text("")
    async with stack() as local:
        local.add_function(FunctionConfig("hooks", HANDLER, timeout=20, code_paths=[FUNCTIONS]))
        local.add_function(
            FunctionConfig(
                "hooks-fail-once",
                HANDLER,
                timeout=20,
                code_paths=[FUNCTIONS],
                environment={"FAIL_INIT_ONCE": str(marker)},
            )
        )
        local.marker = marker  # type: ignore[attr-defined]
        yield local


def target(aws: LocalAws, function: str) -> LambdaTarget:
    return LambdaTarget(
        function, task="whoami", endpoint_url=aws.lambda_endpoint_url, region_name="us-east-1"
    )


async def whoami(aws: LocalAws, function: str, *holds: float) -> list[Any]:
    result = await dispatch_many(target(aws, function), list(holds), concurrency=len(holds))
    return [outcome.value if outcome.ok else outcome.error for outcome in result]


@pytest.mark.slow
async def test_hooks_run_once_per_environment_on_its_loop(aws: LocalAws) -> None:
    first, again = await whoami(aws, "hooks", 0.0), await whoami(aws, "hooks", 0.0)
    assert first[0]["inits"] == ["count_inits", "open_pool"]  # both, in registration order
    assert first[0]["same_loop"] is True  # the async hook ran on the loop tasks run on
    assert again[0]["pid"] == first[0]["pid"]  # warm: the same environment ...
    assert again[0]["inits"] == ["count_inits", "open_pool"]  # ... did not run them again
    # Two invokes at once: the second gets a new environment, which runs the hooks itself.
    both = await whoami(aws, "hooks", 0.5, 0.5)
    pids = {reply["pid"] for reply in both}
    assert len(pids) == 2
    assert all(reply["inits"] == ["count_inits", "open_pool"] for reply in both)


@pytest.mark.slow
async def test_a_failing_hook_is_an_init_error_and_the_next_environment_runs_it(
    aws: LocalAws,
) -> None:
    marker: Path = aws.marker  # type: ignore[attr-defined]
    [error] = await whoami(aws, "hooks-fail-once", 0.0)
    assert isinstance(error, TaskFailed)
    assert error.remote_type == "Runtime.InitError"
    assert "open_pool raised ConnectionError: the model server did not answer" in error.message
    failed_pid = int(Path(f"{marker}.failed").read_text())  # noqa: ASYNC240 (a few bytes)
    [reply] = await whoami(aws, "hooks-fail-once", 0.0)
    assert reply["pid"] != failed_pid  # that environment was not reused
    assert reply["inits"] == ["count_inits", "open_pool"]  # the new one ran every hook


async def test_a_hook_that_raises_fails_handle_and_runs_again_next_time() -> None:
    app = App("in-process")
    calls: list[str] = []

    @app.on_init
    async def flaky() -> None:
        calls.append("init")
        if len(calls) == 1:
            raise OSError("no pool yet")

    @app.task
    async def ping() -> str:
        calls.append("ping")
        return "pong"

    envelope = {"v": 1, "task": "ping", "id": "e1"}
    with pytest.raises(InitFailed) as caught:
        await app.handle(envelope, LambdaContext())
    assert caught.value.hook.endswith("flaky")
    assert isinstance(caught.value.__cause__, OSError)
    assert calls == ["init"]  # nothing of the event ran
    assert (await app.handle(envelope, LambdaContext()))["value"] == "pong"
    assert (await app.handle(envelope, LambdaContext()))["value"] == "pong"
    assert calls == ["init", "init", "ping", "ping"]  # once it succeeded, never again


async def test_eager_mode_runs_the_hooks_before_the_first_task() -> None:
    app = App("eager")
    made: dict[str, str] = {}

    @app.on_init
    def make_client() -> None:
        made["client"] = "ready"

    @app.task
    async def use_client(n: int) -> str:
        return f"{made['client']} {n}"

    result = await dispatch_many(use_client, [1, 2], concurrency=2)
    assert result.values() == ["ready 1", "ready 2"]
