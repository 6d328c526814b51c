"""The ``REPORT`` line of an invocation's log, measured as Lambda measures it.

Lambda ends each invocation's log with one tab-separated line that people read to size a
function (fields here one a line; Lambda separates them with tabs)::

    REPORT RequestId: <id>
    Duration: 12.34 ms
    Billed Duration: 118 ms
    Memory Size: 128 MB
    Max Memory Used: 41 MB
    Init Duration: 105.21 ms

``Duration`` runs from the delivery of the event to the answer; ``Init Duration`` (on a cold
start only) from the environment's start to its first poll of the Runtime API; ``Max Memory
Used`` is the environment's peak resident memory (Linux ``VmHWM``: the process's high-water
mark, as AWS reports the environment's); ``Billed Duration`` rounds up to the millisecond and,
since August 2025, includes the init phase of a managed runtime's zip function.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._environments import Environment


@dataclass(frozen=True, slots=True)
class Report:
    """What one invocation took: milliseconds, its environment's memory, the init if cold."""

    duration_ms: float
    memory_size_mb: int
    pid: int | None  # the environment's process: its peak memory is read when the line is
    init_duration_ms: float | None
    peak_mb: int | None = None  # read already (its environment is about to go)

    @classmethod
    def measure(cls, env: Environment, started: float, ended: float) -> Report:
        """The report of an invocation that ran in ``env`` from ``started`` to ``ended``.

        The first report of an environment carries its init (it was a cold start).
        """
        init = None
        if not env.reported_init and env.ready_at is not None:
            init = (env.ready_at - env.spawned_at) * 1000
            env.reported_init = True
        pid = env.process.pid if env.process is not None and not env.dead else None
        return cls((ended - started) * 1000, env.config.memory, pid, init)

    @property
    def max_memory_used_mb(self) -> int | None:
        """The environment's peak memory so far (a high-water mark: read when asked, once)."""
        return self.peak_mb if self.peak_mb is not None else peak_memory_mb(self.pid)

    def read_now(self) -> Report:
        """The report with the peak memory read now, for an environment about to be killed."""
        return dataclasses.replace(self, peak_mb=peak_memory_mb(self.pid), pid=None)

    def line(self, request_id: str) -> str:
        """The ``REPORT`` line, as Lambda writes it (tab-separated, a trailing tab)."""
        billed = math.ceil(self.duration_ms + (self.init_duration_ms or 0.0))
        fields = [
            f"REPORT RequestId: {request_id}",
            f"Duration: {self.duration_ms:.2f} ms",
            f"Billed Duration: {billed} ms",
            f"Memory Size: {self.memory_size_mb} MB",
        ]
        used = self.max_memory_used_mb
        if used is not None:
            fields.append(f"Max Memory Used: {used} MB")
        if self.init_duration_ms is not None:
            fields.append(f"Init Duration: {self.init_duration_ms:.2f} ms")
        return "\t".join(fields) + "\t\n"


def peak_memory_mb(pid: int | None) -> int | None:
    """The peak resident memory of process ``pid`` in MB (``None`` where Linux cannot tell)."""
    if pid is None:
        return None
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_bytes().splitlines():
            if line.startswith(b"VmHWM:"):
                return math.ceil(int(line.split()[1]) / 1024)  # kB
    return None
