"""Shared helpers of the benchmarks: repeat, take medians with min-max, write README sections."""

from __future__ import annotations

import argparse
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).with_name("README.md")


@dataclass
class Measure:
    name: str
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def cell(self, scale: float = 1.0, fmt: str = "{:.2f}") -> str:
        lo, hi = min(self.samples) * scale, max(self.samples) * scale
        return f"{fmt.format(self.median * scale)} ({fmt.format(lo)}-{fmt.format(hi)})"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def child_peak_rss_mb(argv: Sequence[str]) -> float:
    """Peak RSS (MiB) of a fresh child that reports its own ``ru_maxrss`` on its last line."""
    out = (
        subprocess.run([sys.executable, *argv], check=True, capture_output=True, text=True)
        .stdout.strip()
        .splitlines()
    )
    return float(out[-1])


def own_peak_rss_mb() -> float:
    """This process's peak RSS in MiB.

    VmHWM, not ``ru_maxrss``: on Linux a child's ``ru_maxrss`` keeps the parent's high-water mark
    from before ``exec``, so every child would report at least the parent's size.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    import os

    return f"Python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, body: str) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in README.md."""
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text) if pattern.search(text) else text + "\n" + block + "\n"
    )
    README.write_text(text)


def arguments(doc: str | None, **extra: int) -> argparse.Namespace:
    """The command line every benchmark takes: ``--write``, ``--repeats`` (and ``extra``)."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="rewrite benchmarks/README.md")
    parser.add_argument("--repeats", type=int, default=5)
    for name, default in extra.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    return parser.parse_args()


def publish(section: str, body: str, write: bool) -> None:
    """Print a section, and write it into README.md with ``--write``."""
    print(body)
    if write:
        write_section(section, body)
