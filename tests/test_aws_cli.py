"""``serve`` for a team, through the AWS CLI v1 from PyPI: banner, stack file, walkthrough, SIGTERM.

The CLI pins its own botocore, so it gets its own virtual environment (a session fixture,
cached in the temporary directory across runs). Each CLI call starts a Python process: the
CLI work is kept to the banner's commands and one script, ``examples/local-aws.sh``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiofanout.testing import eventually_sync, free_port

from .serving import Served, serving, wait_for_line

# End to end through real processes: every test here is slow.
pytestmark = pytest.mark.slow


ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ROOT / "tests" / "lambda_functions"
CLI_HOME = Path(tempfile.gettempdir()) / "aiofanout-awscli-v1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_PAGER": "",
}

STACK_FILE = """
[[queue]]
name = "work"

[[queue]]
name = "failures"

[[function]]
name = "echo"
handler = "plain.echo"
code_path = "{functions}"
timeout = 10
environment = {{ STAGE = "local" }}
[function.event_invoke_config]
maximum_retry_attempts = 0
on_failure = "failures"

[[event_source_mapping]]
queue = "work"
function = "echo"
batch_size = 5
maximum_concurrency = 2
"""


@pytest.fixture(scope="session")
def aws_cli() -> Path:
    """The ``aws`` of the AWS CLI v1 (``pip install awscli``) in a virtual environment of its own.

    Built once into the temporary directory and reused by later runs; if it cannot be
    installed (no network), the tests that need it fail and say so: they are not skipped.
    """
    aws = CLI_HOME / "bin" / "aws"
    if _works(aws):
        return aws
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(CLI_HOME)], check=True, timeout=120
        )
        subprocess.run(
            [str(CLI_HOME / "bin" / "python"), "-m", "pip", "install", "-q", "awscli"],
            check=True,
            timeout=600,
            capture_output=True,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        output = getattr(exc, "stderr", b"") or b""
        pytest.fail(
            "could not install the AWS CLI v1 (pip install awscli) into its own virtual "
            f"environment {CLI_HOME}; is PyPI reachable? {exc}\n"
            f"{output.decode(errors='replace')[-2000:]}"
        )
    if not _works(aws):
        pytest.fail(f"{aws} does not run as the AWS CLI v1 after pip install awscli")
    return aws


def _works(aws: Path) -> bool:
    if not aws.exists():
        return False
    done = subprocess.run([str(aws), "--version"], capture_output=True, text=True, check=False)
    return done.returncode == 0 and (done.stdout + done.stderr).startswith("aws-cli/1.")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Served]:
    """``serve --port P --config FILE --account-concurrency 200``; stopped afterwards."""
    config = tmp_path / "local-aws.toml"
    config.write_text(STACK_FILE.format(functions=FUNCTIONS))
    port = free_port()
    options = ("--port", str(port), "--config", str(config), "--account-concurrency", "200")
    with serving(*options) as served:
        assert served.lambda_url == f"http://127.0.0.1:{port}"  # --port: a stable endpoint
        yield served


def run_cli(aws_cli: Path, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **CREDENTIALS}
    return subprocess.run(
        [str(aws_cli), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def test_the_banner_commands_work_as_printed_with_cli_v1(
    aws_cli: Path, serve: Served, tmp_path: Path
) -> None:
    commands = [shlex.split(line) for line in serve.banner if line.strip().startswith("aws ")]
    assert len(commands) == 3
    for command in commands:
        done = run_cli(aws_cli, command[1:], tmp_path)
        assert done.returncode == 0, (command, done.stderr)
    # The stack file's function, queue and mapping are there (ListFunctions, ListQueues).
    listed = run_cli(
        aws_cli, ["--endpoint-url", serve.lambda_url, "lambda", "list-functions"], tmp_path
    )
    functions = json.loads(listed.stdout)["Functions"]
    assert [(f["FunctionName"], f["Environment"]["Variables"]) for f in functions] == [
        ("echo", {"STAGE": "local"})
    ]
    assert json.loads((tmp_path / "out.json").read_text()) == {}  # invoke's answer, echoed
    mappings = run_cli(
        aws_cli,
        [
            "--endpoint-url",
            serve.lambda_url,
            "lambda",
            "list-event-source-mappings",
            "--function-name",
            "echo",
        ],
        tmp_path,
    )
    [mapping] = json.loads(mappings.stdout)["EventSourceMappings"]
    assert (mapping["State"], mapping["BatchSize"]) == ("Enabled", 5)
    config = run_cli(
        aws_cli,
        [
            "--endpoint-url",
            serve.lambda_url,
            "lambda",
            "get-function-event-invoke-config",
            "--function-name",
            "echo",
        ],
        tmp_path,
    )
    assert json.loads(config.stdout)["MaximumRetryAttempts"] == 0
    cli_gets_aws_answers(aws_cli, serve, tmp_path)


def cli_gets_aws_answers(aws_cli: Path, serve: Served, tmp_path: Path) -> None:
    """No payload, account settings, a validation error: as AWS answers the CLI.

    On the banner test's ``serve`` (another one would cost seconds of the suite).
    """

    def lam(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(aws_cli, ["--endpoint-url", serve.lambda_url, "lambda", *args], tmp_path)

    # No --payload: the handler runs with an empty event (echo answers it back).
    invoked = lam("invoke", "--function-name", "echo", "no-payload.json")
    assert invoked.returncode == 0, invoked.stderr
    assert "FunctionError" not in invoked.stdout
    assert json.loads((tmp_path / "no-payload.json").read_text()) == {}
    # GetAccountSettings reports serve's --account-concurrency (API ref: AccountLimit).
    settings = json.loads(lam("get-account-settings").stdout)
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 200
    assert settings["AccountUsage"]["FunctionCount"] == 1
    # A name outside the model's pattern: 400 ValidationException, in AWS's words (exit 255).
    bad = lam("get-function", "--function-name", "bad name")
    assert bad.returncode == 255
    assert "(ValidationException)" in bad.stderr
    assert "Value 'bad name' at 'functionName' failed to satisfy constraint" in bad.stderr


def test_the_walkthrough_runs_end_to_end_with_cli_v1(
    aws_cli: Path, serve: Served, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        **CREDENTIALS,
        "LAMBDA": serve.lambda_url,
        "MOTO": serve.moto_url,
        "PATH": f"{aws_cli.parent}{os.pathsep}{os.environ['PATH']}",
    }
    done = subprocess.run(
        ["bash", str(ROOT / "examples" / "local-aws.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "got {'hello': 'local'}" in out  # the function's log, read back via LogType Tail
    assert '"ReservedConcurrentExecutions": 2' in out
    assert '"condition": "RetriesExhausted"' in out  # the on-failure record
    assert "exit code 255" in out  # AWS CLI v1's exit code for a service error
    assert "InvalidRequestContentException" in done.stderr
    # serve's own output shows the function's output with its name and the request id.
    shown = wait_for_line(serve.lines, "got {'hello': 'local'}", timeout=10)[-1]
    assert re.search(r"walkthrough [0-9a-f-]{36} got \{'hello': 'local'\}", shown)
    assert "messages left on the queue: 0" in out
    assert out.rstrip().endswith("walkthrough done")


@pytest.mark.skipif(not Path("/proc").exists(), reason="needs /proc to find the children")
def test_sigterm_stops_serve_and_every_process_it_started(serve: Served) -> None:
    import boto3

    client = boto3.client("lambda", endpoint_url=serve.lambda_url, region_name="us-east-1")
    client.invoke(FunctionName="echo", Payload=b"{}")  # an environment is running now
    children = _children(serve.process.pid)
    assert len(children) >= 2  # the moto server and at least one awslambdaric
    serve.process.send_signal(signal.SIGTERM)
    assert serve.process.wait(timeout=30) == 0

    def none_left_running() -> bool:
        return not {p for p in children if Path(f"/proc/{p}").exists()}

    eventually_sync(none_left_running, timeout=20)


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found
