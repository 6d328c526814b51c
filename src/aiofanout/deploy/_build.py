"""``build``: a stack into ``DIR/template.yaml`` and one reproducible zip per function."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import UsageError
from ._description import Stack
from ._model import Function
from ._package import BUILD_MARKER, PackageLimits, check_unzipped, collect, write_zip
from ._resolve import Resolution, aiofanout_requirements, default_cache_dir, names_in, resolve
from ._template import sam_template

__all__ = ["Built", "build", "template_yaml"]

HEADER = f"{BUILD_MARKER}: change the stack file and build again.\n"


@dataclass(frozen=True, slots=True)
class Built:
    """What :func:`build` wrote: the template, and each function's zip with its sizes.

    Example::

        built = build(Stack.load("stack.toml"), "build")
        built.zips["worker"]  # PosixPath('build/worker.zip')
        built.sizes["worker"]  # (zipped, unzipped) bytes
    """

    template: Path
    zips: dict[str, Path] = field(default_factory=dict)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)


def build(
    stack: Stack,
    out: str | Path,
    *,
    cache_dir: str | Path | None = None,
    refresh: bool = False,
    limits: PackageLimits | None = None,
    progress: bool = False,
) -> Built:
    """Write the stack's SAM template and a zip per function into ``out``.

    Each zip holds the function's code directory, its ``requirements.txt`` resolved by pip for
    its architecture and the stack's Python, and aiofanout (this one, with the extras it
    needs). Resolved sets are cached in ``cache_dir`` (default ``~/.cache/aiofanout``) by what
    decides them; ``refresh`` resolves again. A package over ``limits`` raises
    :class:`UsageError` naming the largest parts; ``progress`` shows a bar on stderr.

    Example::

        built = build(Stack.load("stack.toml"), "build")
        print(built.template)  # build/template.yaml: sam deploy --template-file ...
    """
    out = Path(out).resolve()
    template = sam_template(stack)  # first: a stack AWS would refuse stops before any pip run
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    built = Built(out / "template.yaml")
    with _progress(progress) as bar:
        for function in stack.functions:
            zipped, unzipped = _package(stack, function, out, cache, refresh, limits, bar)
            built.zips[function.name] = out / f"{function.name}.zip"
            built.sizes[function.name] = (zipped, unzipped)
    built.template.write_text(template_yaml(template))
    return built


def template_yaml(template: dict[str, Any]) -> str:
    """The template as YAML (PyYAML: the ``deploy`` extra), in the order it was built."""
    try:
        import yaml
    except ModuleNotFoundError as exc:
        raise UsageError("build writes YAML with PyYAML: pip install 'aiofanout[deploy]'") from exc
    body = yaml.safe_dump(template, sort_keys=False, default_flow_style=False, width=100)
    return HEADER + str(body)


def _package(
    stack: Stack,
    function: Function,
    out: Path,
    cache: Path,
    refresh: bool,
    limits: PackageLimits | None,
    bar: _Bar,
) -> tuple[int, int]:
    limits = limits or PackageLimits()
    resolution = _resolution(stack, function)
    bar.step(f"{function.name}: resolving for {function.architecture}", total=1)
    deps = resolve(resolution, cache, refresh=refresh, on_line=bar.note)
    roots = [(function.code, "", frozenset({out, cache}))]
    if deps is not None:
        roots.append((deps, "", frozenset({deps / "bin"})))  # scripts name this machine's python
    if function.bundle_aiofanout:
        roots.append((_aiofanout_source(), "aiofanout/", frozenset()))
    entries = collect(roots, function.name)
    unzipped = check_unzipped(entries, function.name, limits)
    bar.step(f"{function.name}: zipping {len(entries)} files", total=len(entries))
    zipped = write_zip(entries, out / f"{function.name}.zip", function.name, limits, bar.advance)
    return zipped, unzipped


def _resolution(stack: Stack, function: Function) -> Resolution:
    requirements = function.requirements or function.code / "requirements.txt"
    if function.requirements is not None and not requirements.is_file():
        raise UsageError(f"function {function.name!r}: no requirements file {requirements}")
    has_file = requirements.is_file()
    lines: list[str] = []
    if function.bundle_aiofanout:
        if has_file and "aiofanout" in names_in(requirements):
            raise UsageError(
                f"function {function.name!r}: {requirements} lists aiofanout, which build "
                "bundles itself (the version that runs it): remove the line, or set "
                "bundle_aiofanout = false to take it from requirements.txt"
            )
        lines = aiofanout_requirements(stack.extras(function))
    return Resolution(
        function.name,
        tuple(lines),
        requirements if has_file else None,
        function.architecture,
        stack.python,
    )


def _aiofanout_source() -> Path:
    import aiofanout

    return Path(aiofanout.__file__).resolve().parent


class _Bar:
    """Progress on stderr: a rich bar when rich is there (the ``cli`` extra), else plain lines."""

    def __init__(self, rich_progress: Any = None, *, quiet: bool = False) -> None:
        self._rich, self._quiet = rich_progress, quiet
        self._task: Any = None
        self._function = ""

    def step(self, text: str, total: int | None = None) -> None:
        self._function = text.partition(":")[0]
        if self._rich is not None:
            if self._task is not None:
                self._rich.update(self._task, completed=self._rich.tasks[-1].total or 1)
            self._task = self._rich.add_task(text, total=total)
        elif not self._quiet:
            print(text, file=sys.stderr, flush=True)

    def note(self, line: str) -> None:
        if self._rich is not None and self._task is not None and line.startswith("Collecting"):
            self._rich.update(self._task, description=f"{self._function}: {line[:60]}")

    def advance(self) -> None:
        if self._rich is not None and self._task is not None:
            self._rich.advance(self._task)


@contextlib.contextmanager
def _progress(show: bool) -> Iterator[_Bar]:
    if not show:
        yield _Bar(quiet=True)
        return
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn
    except ModuleNotFoundError:
        yield _Bar()
        return
    columns = (SpinnerColumn(), "{task.description}", BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as rich_progress:
        yield _Bar(rich_progress)
