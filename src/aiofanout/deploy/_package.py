"""A function's zip: its code, its dependencies and aiofanout, reproducible, within AWS's limits.

Reproducible means the same inputs give the same bytes: entries sorted by name, every
timestamp 1980-01-01 (the zip format's first), modes 0644 (0755 where the owner could run the
file), no ``__pycache__`` or ``.pyc`` (Lambda compiles what it imports, and bytecode embeds
the source's mtime), no console scripts (their ``#!`` names this machine's Python), and no
directory entries (Lambda needs none). So a rebuild that changed nothing changes no hash, and
CloudFormation updates no function.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .._errors import UsageError

__all__ = [
    "BUILD_MARKER",
    "MIB",
    "Entry",
    "PackageLimits",
    "check_unzipped",
    "collect",
    "write_zip",
]

MIB = 1024 * 1024
EPOCH = (1980, 1, 1, 0, 0, 0)
#: The first line of the template build writes: a folder holding one is an earlier build's
#: output, never code (a code directory of "." would otherwise pack every old build).
BUILD_MARKER = "# Written by `python -m aiofanout build`"


@dataclass(frozen=True, slots=True)
class PackageLimits:
    """Lambda's limits on a .zip package, in bytes (AWS's 2025 values: change data, not code).

    ``zipped`` is the most a direct upload takes (``create-function --zip-file``; through S3,
    as ``sam deploy`` does, only ``unzipped`` applies, so raise ``zipped`` for that); ``unzipped``
    is the most the function's code and layers may take once unpacked.

    Example::

        PackageLimits(zipped=50 * MIB, unzipped=250 * MIB)  # the defaults
    """

    zipped: int = 50 * MIB
    unzipped: int = 250 * MIB


@dataclass(frozen=True, slots=True)
class Entry:
    """One file of the zip: its name there and where it comes from."""

    name: str
    source: Path

    @property
    def size(self) -> int:
        """The file's size, unzipped."""
        return self.source.stat().st_size


def collect(roots: list[tuple[Path, str, frozenset[Path]]], function: str) -> list[Entry]:
    """The files of ``(directory, prefix in the zip, paths left out)`` roots, sorted by name.

    A name found in two roots (your code has a ``yaml.py`` and a dependency is PyYAML) is an
    error: one of them would silently win.
    """
    entries: dict[str, Entry] = {}
    for root, prefix, left_out in roots:
        for path in _files(root, left_out):
            name = prefix + path.relative_to(root).as_posix()
            if name in entries:
                raise UsageError(
                    f"function {function!r}: {name} is both in {entries[name].source.parent} "
                    f"and in {path.parent}; rename yours, or leave the dependency out"
                )
            entries[name] = Entry(name, path)
    return [entries[name] for name in sorted(entries)]


def _files(root: Path, left_out: frozenset[Path]) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if _kept_dir(here / d, left_out))
        for name in sorted(files):
            if not name.startswith(".") and not name.endswith((".pyc", ".pyo")):
                yield here / name


def _kept_dir(path: Path, left_out: frozenset[Path]) -> bool:
    if path.name.startswith(".") or path.name == "__pycache__" or path in left_out:
        return False
    if (path / "pyvenv.cfg").exists():  # a virtual environment is not code
        return False
    template = path / "template.yaml"
    return not (template.is_file() and template.read_text().startswith(BUILD_MARKER))


def check_unzipped(entries: list[Entry], function: str, limits: PackageLimits) -> int:
    """The unzipped size; :class:`UsageError` naming the largest packages if over the limit."""
    total = sum(entry.size for entry in entries)
    if total > limits.unzipped:
        raise UsageError(
            f"function {function!r}: {total / MIB:.1f} MiB unzipped is over Lambda's "
            f"{limits.unzipped / MIB:.0f} MiB; the largest: {largest(entries)}. Leave out what "
            "the function does not import, or move it to a layer or a container image"
        )
    return total


def largest(entries: list[Entry], count: int = 5) -> str:
    """The ``count`` largest top-level packages of ``entries``, with their sizes."""
    sizes: dict[str, int] = {}
    for entry in entries:
        top = entry.name.split("/", 1)[0]
        if top.endswith((".dist-info", ".data")):
            top = top.split("-", 1)[0]  # a distribution's metadata counts with it
        sizes[top] = sizes.get(top, 0) + entry.size
    ranked = sorted(sizes.items(), key=lambda item: (-item[1], item[0]))[:count]
    return ", ".join(f"{name} {size / MIB:.1f} MiB" for name, size in ranked)


def write_zip(
    entries: list[Entry],
    path: Path,
    function: str,
    limits: PackageLimits,
    advance: Callable[[], None] = lambda: None,
) -> int:
    """Write the zip (fixed times and modes, sorted); its size, checked against the limit."""
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name, date_time=EPOCH)
            info.create_system = 3  # unix: the mode below is read as one
            executable = entry.source.stat().st_mode & 0o100
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entry.source.read_bytes())
            advance()
    size = partial.stat().st_size
    if size > limits.zipped:
        partial.unlink()
        raise UsageError(
            f"function {function!r}: the zip is {size / MIB:.1f} MiB, over the "
            f"{limits.zipped / MIB:.0f} MiB of a direct upload; the largest: {largest(entries)}. "
            "Deploying through S3 (sam deploy) allows more: raise --max-zipped-mb"
        )
    partial.replace(path)
    return size
