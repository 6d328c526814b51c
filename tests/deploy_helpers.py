"""What the deploy tests share: the real cfn-lint, the real SAM translator, a walk of IAM."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "deploy" / "stack.toml"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
ARTIFACTS = "s3://aiofanout-test-artifacts/"  # what `cloudformation package` would put there
FUNCTIONS = ROOT / "tests" / "lambda_functions"

#: A stack with SNS topics: a function and a queue (raw) subscribed to one, a FIFO pair, a sender.
TOPICS = f"""
[[queue]]
name = "audit"

[[queue]]
name = "orders.fifo"

[[function]]
name = "worker"
handler = "peers_worker.lambda_handler"
code = "{FUNCTIONS}"
timeout = 20

[[function]]
name = "sender"
handler = "peers_worker.lambda_handler"
code = "{FUNCTIONS}"
publishes_to = ["tasks", "orders.fifo"]
environment = {{ TASKS = "${{topic.tasks.arn}}" }}

[[event_source_mapping]]
queue = "audit"
function = "worker"

[[event_source_mapping]]
queue = "orders.fifo"
function = "worker"

[[topic]]
name = "tasks"

[[topic]]
name = "orders.fifo"
content_based_deduplication = true

[[subscription]]
topic = "tasks"
function = "worker"

[[subscription]]
topic = "tasks"
queue = "audit"
raw = true

[[subscription]]
topic = "orders.fifo"
queue = "orders.fifo"
"""


def cfn_lint(*paths: Path) -> list[str]:
    """cfn-lint's findings (errors and warnings) for ``paths``, one line each; [] when clean."""
    done = subprocess.run(
        [str(CFN_LINT), "--format", "parseable", "--", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 2, 4, 6), done.stderr  # anything else: cfn-lint itself failed
    return [line for line in done.stdout.splitlines() if ":E" in line or ":W" in line]


def translated(template: dict[str, Any]) -> dict[str, Any]:
    """The CloudFormation the SAM transform makes of ``template`` (after ``package``)."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    packaged = json.loads(json.dumps(template))
    for resource in packaged["Resources"].values():
        properties = resource.get("Properties", {})
        if isinstance(properties.get("CodeUri"), str):
            properties["CodeUri"] = ARTIFACTS + properties["CodeUri"]
    session = boto3.session.Session(region_name="us-east-1")  # no call is made: ARNs need one
    result: dict[str, Any] = Translator({}, Parser(), boto_session=session).translate(packaged, {})
    return result


def write_template(template: dict[str, Any], path: Path) -> Path:
    """``template`` as YAML at ``path`` (the form cfn-lint reads as users' files)."""
    path.write_text(yaml.safe_dump(template, sort_keys=False))
    return path


def walk(node: Any, key: str) -> Iterator[Any]:
    """Every value under ``key`` anywhere in ``node``."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key:
                yield value
            yield from walk(value, key)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value, key)


def identity_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of every role's policies (trust policies left out: they name principals)."""
    found = []
    for resource in template["Resources"].values():
        for policy in resource.get("Properties", {}).get("Policies", []):
            if isinstance(policy, dict) and "PolicyDocument" in policy:
                found.extend(policy["PolicyDocument"]["Statement"])
    return found


#: One topic, a queue per kind of work, each subscription with its own filter policy.
FILTERED = """
[[queue]]
name = "images"

[[queue]]
name = "videos"

[[topic]]
name = "jobs"

[[subscription]]
topic = "jobs"
queue = "images"
raw = true
filter_policy = { kind = ["image"] }

[[subscription]]
topic = "jobs"
queue = "videos"
raw = true
filter_policy = { task = ["transcode"] }  # a field of the envelope
filter_policy_scope = "MessageBody"
"""

#: ``TOPICS`` with a function subscribed to ``jobs`` by attribute: SAM's SNS event filters too.
FILTERED_TOPICS = (
    TOPICS
    + FILTERED
    + """
[[subscription]]
topic = "jobs"
function = "worker"
filter_policy = { kind = ["text"], size = [{ numeric = ["<", 100] }] }
"""
)
