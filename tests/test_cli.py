"""The command line: --help, the README's demo, and serve."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aiofanout.testing import eventually_sync

from .serving import serving

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiofanout", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
        # Wide enough that the summary table never wraps a note: a slow run's wider numbers
        # would otherwise split "30 results back" over two rows.
        env={**os.environ, "COLUMNS": "400"},
    )


@pytest.mark.slow
def test_help_explains_the_commands() -> None:
    done = run("--help")
    assert done.returncode == 0
    assert "demo" in done.stdout
    assert "serve" in done.stdout
    assert "--function" in run("serve", "--help").stdout


@pytest.mark.slow
def test_a_bad_function_spec_is_a_clear_error() -> None:
    done = run("serve", "--function", "no-handler")
    assert done.returncode == 2
    assert "NAME=HANDLER" in done.stderr


@pytest.mark.slow
def test_the_demo_runs_every_phase_end_to_end() -> None:
    done = run("demo", "--items", "30")
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for phase in (
        "in-process",
        "journal + resume",
        "Lambda RequestResponse",
        "Lambda Event + replies",
        "SQS + replies",
    ):
        assert phase in out
    # The Event and SQS phases gather every result through their reply queues.
    assert out.count("30 results back") == 2
    # The resumed run gathered what the journal had and ran the rest, nothing twice.
    assert re.search(r"\d+ from the journal, \d+ run on resume, 0 twice", out)


async def test_the_demo_names_the_error_of_an_item_that_fails_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiofanout import _demo

    async def fails_on_seven(item: int) -> dict[str, int]:
        if item == 7:
            raise LookupError("no photo 7")
        return {"item": item}

    monkeypatch.setattr(_demo, "simulated_io", fails_on_seven)
    monkeypatch.setenv("COLUMNS", "400")
    code = await _demo.run_demo(20, local=False)
    out = capsys.readouterr().out
    assert code == 1
    assert "in-process: 1 of 20 items did not succeed" in out
    assert "item 7: LookupError: no photo 7" in out


@pytest.mark.slow
def test_serve_answers_boto3_and_stops_on_ctrl_c() -> None:
    _serve_answer_boto3_and_stop_on_ctrl_c()


def _serve_answer_boto3_and_stop_on_ctrl_c() -> set[int]:
    """Serve a function, invoke it with boto3, check the banner, then stop serve with Ctrl-C.

    Returns the processes serve had started (its descendants while it ran).
    """
    import boto3

    functions = str(ROOT / "tests" / "lambda_functions")
    with serving("--function", "echo=plain.echo", "--code-path", functions) as served:
        assert served.lambda_url.startswith("http://127.0.0.1:")
        client = boto3.client("lambda", endpoint_url=served.lambda_url, region_name="us-east-1")
        response = client.invoke(FunctionName="echo", Payload=json.dumps({"via": "cli"}))
        assert json.loads(response["Payload"].read()) == {"via": "cli"}
        banner = "\n".join(served.banner)
        for service in ("SQS", "S3", "DynamoDB", "STS", "SNS", "EventBridge", "Logs", "IAM"):
            assert service in banner  # every service the moto server serves is named
        dynamodb = boto3.client("dynamodb", endpoint_url=served.moto_url, region_name="us-east-1")
        assert dynamodb.list_tables()["TableNames"] == []
        # The AWS CLI v1 ignores AWS_ENDPOINT_URL: the banner says to pass --endpoint-url.
        assert "--endpoint-url on every command" in banner
        started = _descendants(served.process.pid)
        served.process.send_signal(signal.SIGINT)
        assert served.process.wait(timeout=30) in (0, 130)
    return started


@pytest.mark.skipif(not Path("/proc").exists(), reason="needs /proc to list processes")
@pytest.mark.slow
def test_serve_leaves_no_child_behind() -> None:
    started = _serve_answer_boto3_and_stop_on_ctrl_c()
    assert len(started) >= 2  # the moto server and the function's environment at least

    # The children may take a moment to exit after serve does: wait for it, up to a bound.
    def no_child_left() -> bool:
        return not any(_alive(pid) for pid in started)

    eventually_sync(no_child_left, timeout=20)


def _descendants(root: int) -> set[int]:
    """The processes below ``root`` now (their parents read from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, exited but not reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"
