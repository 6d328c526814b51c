"""The road to AWS on the example stack: build time, zip sizes, and serve --template to a value.

    python benchmarks/deploy.py [--write] [--repeats 3]

(1) `python -m aiofanout build --config examples/deploy/stack.toml` with an empty cache (pip
    resolves and downloads the wheels for Lambda) and then warm (the cache holds the set),
    checking that every zip is byte-identical between the cold and the warm builds.
(2) `python -m aiofanout serve --template DIR/template.yaml --strict` started, to the first
    RequestResponse fan-out through the built (isolated) worker that gives its value back.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from _bench import Measure, arguments, machine, publish, table
from botocore.config import Config

import aiofanout
from aiofanout.testing import free_port

EXAMPLE = Path(__file__).parent.parent / "examples" / "deploy" / "stack.toml"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def build(out: Path, cache: Path) -> float:
    command = ["-m", "aiofanout", "build", "--config", str(EXAMPLE), "--out", str(out)]
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, *command, "--cache-dir", str(cache)], check=True, capture_output=True
    )
    return time.perf_counter() - start


async def first_value(endpoint: str) -> object:
    target = aiofanout.LambdaTarget("worker", task="thumbnail", endpoint_url=endpoint)
    result = await aiofanout.dispatch_many(target, ["a.png"], concurrency=1, timeout=60)
    result.raise_for_failures()
    return result.values()[0]


def serve_to_first_value(template: Path) -> float:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [
        "-m",
        "aiofanout",
        "serve",
        "--template",
        str(template),
        "--strict",
        "--port",
        str(port),
    ]
    start = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    api = boto3.client(
        "lambda", endpoint_url=endpoint, region_name="us-east-1",
        config=Config(retries={"max_attempts": 0}, connect_timeout=1),
    )  # fmt: skip
    try:
        while True:  # the functions exist once the template is deployed
            try:
                api.get_function(FunctionName="worker")
                break
            except Exception:
                if server.poll() is not None:
                    raise SystemExit(f"serve --template exited with {server.returncode}") from None
                time.sleep(0.02)
        value = asyncio.run(first_value(endpoint))
        assert isinstance(value, dict), value
        assert value["key"] == "a.png", value
        return time.perf_counter() - start
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)


def main() -> None:
    args = arguments(__doc__)
    os.environ.update(CREDENTIALS | {"AWS_DEFAULT_REGION": "us-east-1"})
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        cold = Measure("cold", [build(root / "cold", root / "cache")])
        warm = Measure("warm", [build(root / "warm", root / "cache") for _ in range(args.repeats)])
        zips = sorted(p.name for p in (root / "cold").glob("*.zip"))
        same = all(
            (root / "cold" / z).read_bytes() == (root / "warm" / z).read_bytes() for z in zips
        )
        sizes = [f"{z} {(root / 'cold' / z).stat().st_size / 2**20:.1f} MiB" for z in zips]
        serve = Measure(
            "serve",
            [serve_to_first_value(root / "cold" / "template.yaml") for _ in range(args.repeats)],
        )
        shutil.rmtree(root / "cache", ignore_errors=True)
    rows = [
        ["build, cold (empty cache)", cold.cell(fmt="{:.1f}")],
        [f"build, warm ({args.repeats} runs)", warm.cell(fmt="{:.1f}")],
        [f"serve --template to the first value ({args.repeats} runs)", serve.cell(fmt="{:.1f}")],
    ]
    body = "\n\n".join([
        f"The example stack (`examples/deploy`), {machine()}. Seconds, median (min-max).",
        table(["step", "seconds"], rows),
        f"Zips: {', '.join(sizes)} (Lambda's limit: 50 MB zipped); "
        f"cold and warm builds byte-identical: {same}. Load average at the end: "
        f"{os.getloadavg()[0]:.1f} (other work on the machine slows each step).",
    ])  # fmt: skip
    publish("deploy", body, args.write)


if __name__ == "__main__":
    main()
