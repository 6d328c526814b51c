"""The local runtime in its own process for benchmarks/local.py: PORT as argv[1].

Functions: ``trivial-1``, ``trivial-2``, ``trivial-4`` (1, 2, 4 environments; invokes beyond
them queue for up to 60 s, like the prototype's queue, instead of 429) and ``cold-0`` ..
``cold-9`` (never invoked before: each first invoke is a cold start).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiofanout.local import FunctionConfig, LocalLambda

CODE = str(Path(__file__).with_name("functions"))


async def main() -> None:
    runtime = LocalLambda(port=int(sys.argv[1]))
    await runtime.start()
    for envs in (1, 2, 4):
        runtime.add_function(
            FunctionConfig(
                f"trivial-{envs}",
                "trivial.handler",
                code_paths=[CODE],
                reserved_concurrency=envs,
                throttle_after=60,
            )
        )
    for i in range(10):
        runtime.add_function(FunctionConfig(f"cold-{i}", "trivial.handler", code_paths=[CODE]))
    try:
        await asyncio.Event().wait()
    finally:
        await runtime.stop()


if __name__ == "__main__":
    asyncio.run(main())
