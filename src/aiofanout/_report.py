"""Live progress bars and summary tables for the CLI (needs ``rich``: ``aiofanout[cli]``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ._errors import UsageError
from ._outcome import Progress, Status
from ._result import FanoutResult


def _rich() -> Any:
    try:
        import rich.console
        import rich.progress
        import rich.table
    except ImportError as exc:  # pragma: no cover - rich ships with the cli and local extras
        raise UsageError("the CLI needs rich: pip install 'aiofanout[cli]'") from exc
    return rich


_HEADERS = (
    "phase",
    "items",
    "ok",
    "failed",
    "timed out",
    "skipped",
    "retries",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "items/s",
    "note",
)


@dataclass(slots=True)
class PhaseSummary:
    """One row of the summary table."""

    name: str
    items: int
    counts: dict[Status, int]
    retries: int
    p50: float
    p95: float
    p99: float
    elapsed: float
    note: str = ""
    #: The first few items that did not succeed, each as "item 3: TaskFailed: why".
    failures: tuple[str, ...] = ()

    @classmethod
    def of(cls, name: str, result: FanoutResult[Any], note: str = "") -> PhaseSummary:
        """Summarise a fan-out's result."""
        lat = result.latency
        return cls(
            name,
            len(result),
            result.counts,
            result.retries,
            lat.p50,
            lat.p95,
            lat.p99,
            result.elapsed,
            note,
            _first_failures(result),
        )

    @property
    def failed(self) -> int:
        """How many items ended without a value (failed, timed out or skipped)."""
        return self.items - self.counts[Status.SUCCEEDED]


_FAILURES_SHOWN = 3


def _first_failures(result: FanoutResult[Any]) -> tuple[str, ...]:
    shown: list[str] = []
    for outcome in result:
        if outcome.ok:
            continue
        error = outcome.error
        reason = f"{type(error).__name__}: {error}" if error is not None else outcome.status.value
        shown.append(f"item {outcome.index}: {reason}")
        if len(shown) == _FAILURES_SHOWN:
            break
    return tuple(shown)


class Reporter:
    """Progress bars per phase and a final summary table, printed with rich."""

    def __init__(self) -> None:
        rich = _rich()
        console = rich.console.Console()
        # Piped output (CI, logs) gets a readable width instead of the 80-column fallback,
        # unless COLUMNS names one.
        if not console.is_terminal and "COLUMNS" not in os.environ:
            console = rich.console.Console(width=150)
        self.console = console
        self.rows: list[PhaseSummary] = []

    def say(self, message: str) -> None:
        """Print a line of narration."""
        self.console.print(message)

    @contextlib.contextmanager
    def phase(self, name: str, total: int | None) -> Iterator[Callable[[Progress], None]]:
        """A live progress bar; yields the ``on_progress`` callback to hand to the engine."""
        rich = _rich()
        columns = (
            rich.progress.TextColumn("{task.description:<28}"),
            rich.progress.BarColumn(),
            rich.progress.MofNCompleteColumn(),
            rich.progress.TextColumn("{task.fields[detail]}"),
            rich.progress.TimeElapsedColumn(),
        )
        with rich.progress.Progress(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task(name, total=total, detail="")

            def update(p: Progress) -> None:
                failed = p.counts[Status.FAILED] + p.counts[Status.TIMED_OUT]
                detail = f"in flight {p.in_flight:>3}  retries {p.retries:>3}  failed {failed}"
                bar.update(task, completed=p.done, detail=detail)

            yield update

    def add(self, row: PhaseSummary) -> None:
        """Add a row to the summary table."""
        self.rows.append(row)

    def table(self) -> None:
        """Print the summary table of every phase."""
        rich = _rich()
        table = rich.table.Table(title="aiofanout demo: summary")
        for header in _HEADERS:
            table.add_column(header, justify="left" if header in ("phase", "note") else "right")
        for r in self.rows:
            rate = r.items / r.elapsed if r.elapsed > 0 else 0.0
            table.add_row(
                r.name,
                str(r.items),
                str(r.counts[Status.SUCCEEDED]),
                str(r.counts[Status.FAILED]),
                str(r.counts[Status.TIMED_OUT]),
                str(r.counts[Status.SKIPPED]),
                str(r.retries),
                f"{r.p50 * 1000:.1f}",
                f"{r.p95 * 1000:.1f}",
                f"{r.p99 * 1000:.1f}",
                f"{rate:,.0f}",
                r.note,
            )
        self.console.print(table)
        self._print_failures()

    def _print_failures(self) -> None:
        """Each phase's items that did not succeed, with their errors (never their arguments)."""
        for r in self.rows:
            if r.failed:
                headline = f"{r.name}: {r.failed} of {r.items} items did not succeed"
                self.console.print(f"[red]{headline}[/red]")
                for line in r.failures:
                    self.console.print(f"  {line}", markup=False)

    @property
    def failed(self) -> bool:
        """Whether any phase had an item that did not succeed (the demo then exits 1)."""
        return any(r.failed for r in self.rows)
