"""What the Lambda Python runtime itself provides an isolated function: a directory of links.

On AWS a function's ``sys.path`` is its code (``/var/task``), its layers, the runtime's own
directory (``/var/runtime``: the runtime interface client, and boto3 and botocore as the managed
runtime ships them, with their dependencies) and the standard library; nothing else. An
isolated environment gets the same: its code directories and this directory, built once per
runtime in a temporary directory the runtime removes when it stops. It holds a symbolic link
to each top-level package, module and ``.dist-info`` of exactly the provided distributions,
found with :mod:`importlib.metadata` in the interpreter that runs the local runtime (an
environment's ``python``, if another, must be the same version: awslambdaric is compiled): the
closure of :data:`PROVIDED`'s requirements (extras left out), so awslambdaric's own needs
(simplejson, snapshot-restore-py) come along without being named here. Links, not copies: the
directory costs a few milliseconds, and a package's ``__file__`` still finds its data files.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from ..._errors import UsageError

#: The distributions the managed Python runtime puts on every function's path (AWS's
#: "Runtime-included SDK versions": the runtime interface client, boto3 and botocore);
#: their requirements come along.
PROVIDED = ("awslambdaric", "boto3")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class RuntimeProvided:
    """The directory of what the Lambda Python runtime provides, built on first use."""

    def __init__(self) -> None:
        self._directory: Path | None = None

    def directory(self) -> str:
        """The directory (built now if it is not yet): put it on an isolated ``sys.path``."""
        if self._directory is None:
            directory = Path(tempfile.mkdtemp(prefix="aiofanout-runtime-"))
            try:
                for name, target in sorted(provided_entries().items()):
                    (directory / name).symlink_to(target, target_is_directory=target.is_dir())
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise
            self._directory = directory
        return str(self._directory)

    def cleanup(self) -> None:
        """Remove the directory (its links only: what they point to stays)."""
        directory, self._directory = self._directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


def provided_entries() -> dict[str, Path]:
    """Each top-level entry (package, module, ``.dist-info``) of the provided distributions."""
    entries: dict[str, Path] = {}
    for dist in provided_distributions():
        for name in _top_level(dist):
            entries.setdefault(name, Path(str(dist.locate_file(name))))
    return entries


def provided_distributions() -> list[metadata.Distribution]:
    """:data:`PROVIDED` and what they require (extras left out), as installed here."""
    found: dict[str, metadata.Distribution] = {}
    wanted = [(name, True) for name in PROVIDED]
    while wanted:
        name, required = wanted.pop()
        key = _normalized(name)
        if key in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if required:
                raise UsageError(
                    f"an isolated function needs {name} installed beside the local runtime (the "
                    "Lambda Python runtime provides it): pip install 'aiofanout[local]'"
                ) from None
            continue  # a requirement under a marker this interpreter does not meet
        found[key] = dist
        wanted += [(needed, False) for needed in _requirements(dist)]
    return [found[key] for key in sorted(found)]


def _requirements(dist: metadata.Distribution) -> list[str]:
    """The names ``dist`` requires, leaving out those of its extras."""
    names = []
    for requirement in dist.requires or []:
        spec, _, marker = requirement.partition(";")
        match = _NAME.match(spec.strip())
        if match is not None and "extra" not in marker:
            names.append(match.group())
    return names


def _top_level(dist: metadata.Distribution) -> set[str]:
    """The names ``dist`` installs at the top of its directory (scripts and caches left out).

    Read from its ``RECORD`` (every installer pip, uv and the wheel format know writes one).
    """
    files = dist.files or []
    names = {f.parts[0] for f in files if f.parts and f.parts[0] not in ("..", "__pycache__")}
    return {name for name in names if Path(str(dist.locate_file(name))).exists()}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
