"""Running ``python -m aiofanout serve`` in a test: started, its output read, always stopped."""

from __future__ import annotations

import contextlib
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Served:
    """A running ``serve``: its process, its banner, its endpoints, the lines that follow."""

    process: subprocess.Popen[str]
    banner: list[str]
    lambda_url: str
    moto_url: str
    lines: queue.Queue[str | None]


@contextlib.contextmanager
def serving(*args: str) -> Iterator[Served]:
    """Start ``serve`` with ``args``, wait for its banner; stop it (SIGINT, then kill) after."""
    process = subprocess.Popen(
        [sys.executable, "-m", "aiofanout", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        lines = read_lines(process.stdout)
        banner = wait_for_line(lines, "serving until", timeout=60)
        lambda_url = next(line.split()[-1] for line in banner if line.startswith("local Lambda"))
        moto_url = next(line.split()[-1] for line in banner if line.startswith("moto server"))
        yield Served(process, banner, lambda_url, moto_url, lines)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def read_lines(stream: IO[str]) -> queue.Queue[str | None]:
    """The stream's lines as they come, from a thread (``None`` at the end): waits can end."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        try:
            for line in stream:
                lines.put(line)
        except ValueError:  # closed under us at the end of the test
            pass
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_for_line(lines: queue.Queue[str | None], text: str, *, timeout: float) -> list[str]:
    """Every line up to the first containing ``text``; fails after ``timeout`` s or at the end."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"no {text!r} within {timeout} s; the output was:\n{''.join(seen)}")
        if line is None:
            pytest.fail(f"the output ended without {text!r}:\n{''.join(seen)}")
        seen.append(line)
        if text in line:
            return seen
