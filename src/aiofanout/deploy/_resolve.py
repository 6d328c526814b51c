"""A function's dependencies, resolved for the Lambda platform by pip, and cached.

As AWS's guide for .zip packages says: ``pip install --platform manylinux2014_<arch>
--implementation cp --python-version 3.11 --only-binary=:all: --target DIR``. Only wheels: a
package without one for the platform cannot be installed as Lambda will run it (no compiler
there, and this machine's build would be for this machine). ``manylinux2014`` (glibc 2.17) runs
on every Lambda Python runtime, Amazon Linux 2 (python3.11, glibc 2.26) included.

Besides the function's ``requirements.txt``, the set holds aiofanout's own dependencies with the
extras the function needs, read from the metadata of the aiofanout running the build; the
aiofanout code itself is copied from that installation (:mod:`._package`), so the zip holds
the version that built it, with no wheel to build and no aiofanout fetched from anywhere.

boto3 and botocore are bundled when the set needs them (the ``aws`` extra: aioboto3 pins
aiobotocore, which pins a narrow botocore range): the runtime's own botocore, a version AWS
chooses and changes, would not match it. ``/var/task`` comes first on the runtime's path, so
the bundled ones win, as AWS recommends for a stable SDK.

A resolved set is kept under the cache directory by a hash of everything that decides it (the
requirement lines, the platform, the Python version, pip's version), so building again with the
same inputs installs nothing and gives the same files; ``refresh`` resolves again.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .._errors import UsageError

__all__ = ["Resolution", "aiofanout_requirements", "default_cache_dir", "resolve"]

PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""\s*extra\s*==\s*["']([\w.-]+)["']\s*""")
_NOT_FOUND = re.compile(r"No matching distribution found for (\S+)")
#: How every resolved set is installed, besides where and for which platform (part of its key).
_PIP_OPTIONS = (
    "--no-input",
    "--no-compile",
    "--disable-pip-version-check",
    "--no-warn-script-location",
    "--progress-bar",
    "off",
)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What one pip run installs: requirement lines (and a requirements file) for a platform."""

    function: str
    lines: tuple[str, ...]
    requirements_file: Path | None
    architecture: str
    python: str

    def key(self) -> str:
        """A hash of everything that decides the resolved set."""
        text = self.requirements_file.read_text() if self.requirements_file else ""
        facts = [sorted(self.lines), text, PLATFORMS[self.architecture], self.python]
        facts += [_pip_version(), *_PIP_OPTIONS]  # a set made another way is another set
        return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:24]

    def empty(self) -> bool:
        """Whether there is nothing to install."""
        return not self.lines and self.requirements_file is None


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/aiofanout`` (``~/.cache/aiofanout``): resolved sets and pip's cache."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "aiofanout"


def aiofanout_requirements(extras: list[str]) -> list[str]:
    """The dependencies of aiofanout itself with ``extras``, from the running aiofanout's metadata.

    Example::

        aiofanout_requirements(["aws"])  # ['anyio>=4.4', 'pydantic>=2.7', 'aioboto3>=13', ...]
    """
    try:
        declared = importlib.metadata.requires("aiofanout") or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise UsageError(
            "build bundles the installed aiofanout, and its metadata is not found: install it "
            "(pip install aiofanout, or pip install -e . in its source)"
        ) from exc
    found = []
    for line in declared:
        requirement, _, marker = line.partition(";")
        extra = _EXTRA.fullmatch(marker) if marker else None
        if marker and extra is None:
            found.append(line)  # another marker (a Python version): pip judges it
        elif extra is None or extra[1] in extras:
            name = _NAME.match(requirement)
            if name is None or name[1].lower() != "aiofanout":  # the dev extra names itself
                found.append(requirement.strip())
    unknown = sorted(set(extras) - _declared_extras())
    if unknown:
        raise UsageError(f"aiofanout has no extras {unknown}; it has {sorted(_declared_extras())}")
    return list(dict.fromkeys(found))


def _declared_extras() -> set[str]:
    metadata = importlib.metadata.metadata("aiofanout")
    return set(metadata.get_all("Provides-Extra") or [])


def names_in(requirements_file: Path) -> list[str]:
    """The project names a requirements file lists (options and includes left out)."""
    names = []
    for raw in requirements_file.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            match = _NAME.match(line)
            if match:
                names.append(match[1].lower().replace("_", "-"))
    return names


def resolve(
    resolution: Resolution,
    cache_dir: Path,
    *,
    refresh: bool = False,
    on_line: Callable[[str], None] = lambda line: None,
) -> Path | None:
    """The directory of the resolved set (cached), ``None`` when there is nothing to install."""
    if resolution.empty():
        return None
    done = cache_dir / "deps" / resolution.key()
    if done.is_dir() and not refresh:
        return done
    work = done.with_name(f"{done.name}.{os.getpid()}.partial")
    shutil.rmtree(work, ignore_errors=True)
    _pip_install(resolution, work, cache_dir / "pip", on_line)
    shutil.rmtree(done, ignore_errors=True)
    with contextlib.suppress(OSError):  # a racing build of the same set finished first: same files
        work.rename(done)
    shutil.rmtree(work, ignore_errors=True)
    return done


def _pip_install(
    resolution: Resolution, target: Path, pip_cache: Path, on_line: Callable[[str], None]
) -> None:
    command = [sys.executable, "-m", "pip", "install", *_PIP_OPTIONS]
    command += ["--cache-dir", str(pip_cache), "--target", str(target)]
    command += ["--platform", PLATFORMS[resolution.architecture], "--implementation", "cp"]
    command += ["--python-version", resolution.python, "--only-binary=:all:"]
    command += list(resolution.lines)
    if resolution.requirements_file is not None:
        command += ["-r", str(resolution.requirements_file)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert process.stdout is not None
    output = []
    with process:
        for line in process.stdout:
            output.append(line)
            on_line(line.strip())
    if process.returncode != 0:
        raise UsageError(_pip_failure(resolution, "".join(output)))


def _pip_failure(resolution: Resolution, output: str) -> str:
    where = f"function {resolution.function!r}"
    platform = f"{PLATFORMS[resolution.architecture]}, CPython {resolution.python}"
    missing = _NOT_FOUND.search(output)
    if missing:
        return (
            f"{where}: pip found no wheel of {missing[1]} for {platform}. Lambda runs wheels "
            "built for its platform: check the name and version in requirements.txt, or pick a "
            "version that publishes manylinux wheels (pure-Python ones always fit)"
        )
    errors = [line for line in output.splitlines() if line.startswith("ERROR")] or [output[-800:]]
    return f"{where}: pip could not install its dependencies for {platform}: " + " ".join(errors)


def _pip_version() -> str:
    try:
        return importlib.metadata.version("pip")
    except importlib.metadata.PackageNotFoundError:
        return "none"
