"""The worker's JSON log lines, from a real awslambdaric process, in an invoke's Tail log."""

from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from aiofanout.local import FunctionConfig, LocalAws
from aiofanout.testing import sqs_record
from aiofanout.worker import App

from .control_plane_helpers import call, client

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

FUNCTIONS = str(Path(__file__).with_name("lambda_functions"))
ACCOUNT_NUMBER = "4000-1234-5678-9010"  # an argument: it must not reach the log

sender = App("e2e-logs")  # the worker's task, by name, to encode its envelopes here


@sender.task
async def audit(account: str) -> str:
    raise AssertionError("runs in the function, not here")


def json_lines(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


async def test_a_worker_s_json_lines_name_the_envelope_message_and_request(
    aws: LocalAws,
) -> None:
    name = f"fn-{uuid.uuid4().hex[:8]}"
    aws.add_function(
        FunctionConfig(name, "logs_worker.lambda_handler", code_paths=[FUNCTIONS], memory=256)
    )
    lam = client("lambda", aws.lambda_endpoint_url)
    record = sqs_record(audit.envelope(ACCOUNT_NUMBER), receive_count=2)
    response = await call(
        lam.invoke, FunctionName=name, Payload=json.dumps({"Records": [record]}), LogType="Tail"
    )
    assert json.loads(response["Payload"].read()) == {"batchItemFailures": []}
    log = base64.b64decode(response["LogResult"]).decode()
    match = re.search(r"START RequestId: (\S+)", log)
    assert match is not None, log
    lines = json_lines(log)
    task_line = next(o for o in lines if o["logger"] == "e2e.audit")
    library_line = next(o for o in lines if o["logger"] == "aiofanout.worker")
    for line in (task_line, library_line):
        assert line["service"] == "e2e-logs"
        assert line["function_request_id"] == match.group(1)
        assert line["function_name"] == name
        assert line["function_memory_size"] == 256
        assert line["envelope_id"] == json.loads(record["body"])["id"]
        assert (line["task"], line["message_id"], line["attempt"]) == (
            "audit",
            record["messageId"],
            2,
        )
    assert task_line["message"] == "auditing"
    assert task_line["cold_start"] is True  # the environment's first invocation
    assert ACCOUNT_NUMBER not in log
