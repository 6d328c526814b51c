"""``build``: reproducible zips, resolved by pip for Lambda, in limits; templates cfn-lint passes.

pip reaches the package index: the requirements are tiny, and the resolved sets and pip's own
downloads are cached in the temporary directory across runs (a cold cache costs ~30 s once).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from aiofanout import UsageError
from aiofanout.deploy import PackageLimits, Stack, build

from .deploy_helpers import EXAMPLE, cfn_lint

pytestmark = pytest.mark.slow  # pip runs and zips of thousands of files

CACHE = Path(tempfile.gettempdir()) / "aiofanout-build-test-cache"
TINY = """
[[function]]
name = "tiny"
handler = "app.handler"
code = "code"
architecture = "{architecture}"
bundle_aiofanout = false
"""


def tiny_stack(tmp_path: Path, requirements: str, architecture: str = "x86_64") -> Stack:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "app.py").write_text("def handler(event, context):\n    return event\n")
    (code / "requirements.txt").write_text(requirements)
    (code / "__pycache__").mkdir(exist_ok=True)
    (code / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"stale")
    (code / "legacy.pyc").write_bytes(b"stale")  # bytecode outside __pycache__ stays out too
    (code / ".env").write_text("SECRET=1\n")  # hidden files are not code
    path = tmp_path / "stack.toml"
    path.write_text(TINY.format(architecture=architecture))
    return Stack.load(path)


def names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def test_the_example_builds_into_linted_template_and_identical_zips(tmp_path: Path) -> None:
    stack = Stack.load(EXAMPLE)
    first = build(stack, tmp_path / "one", cache_dir=CACHE)
    second = build(stack, tmp_path / "two", cache_dir=CACHE)
    assert cfn_lint(first.template) == []
    for name in ("worker", "orchestrator"):
        assert first.zips[name].read_bytes() == second.zips[name].read_bytes()
        listed = names(first.zips[name])
        assert listed == sorted(listed)
        assert f"{name}.py" in listed
        assert "aiofanout/__init__.py" in listed  # aiofanout itself, this one
        assert "aioboto3/__init__.py" in listed  # the aws extra: the worker replies
        assert "botocore/__init__.py" in listed  # bundled: aiobotocore pins it
        assert not [n for n in listed if "__pycache__" in n or n.endswith(".pyc")]
        assert not [n for n in listed if n.startswith("bin/")]
        with zipfile.ZipFile(first.zips[name]) as archive:
            infos = archive.infolist()
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert {i.external_attr >> 16 for i in infos} <= {0o100644, 0o100755}
        assert any("x86_64-linux-gnu.so" in n for n in listed)  # pydantic-core for Lambda
    zipped, unzipped = first.sizes["worker"]
    assert zipped < 50 * 2**20
    assert unzipped < 250 * 2**20
    assert first.template.read_text().startswith("# Written by `python -m aiofanout build`")


@pytest.mark.parametrize(("architecture", "machine"), [("x86_64", "x86_64"), ("arm64", "aarch64")])
def test_a_requirement_resolves_for_the_function_architecture_the_same_each_time(
    tmp_path: Path, architecture: str, machine: str
) -> None:
    stack = tiny_stack(tmp_path, "PyYAML==6.0.2\n", architecture)
    first = build(stack, tmp_path / "one", cache_dir=CACHE)
    # Resolved again by pip (not from the resolved set): still the same bytes.
    again = build(stack, tmp_path / "two", cache_dir=CACHE, refresh=True)
    assert first.zips["tiny"].read_bytes() == again.zips["tiny"].read_bytes()
    listed = names(first.zips["tiny"])
    assert {"app.py", "requirements.txt"} <= set(listed)
    assert any(n.startswith("yaml/_yaml.cpython-311-") and machine in n for n in listed), listed
    assert not [n for n in listed if n.startswith("aiofanout/") or "__pycache__" in n]
    assert not [n for n in listed if n.endswith(".pyc") or n.startswith(".")]


def test_a_package_pip_cannot_find_is_named(tmp_path: Path) -> None:
    stack = tiny_stack(tmp_path, "aiofanout-test-no-such-package==1.0\n")
    with pytest.raises(UsageError, match=r"no wheel of aiofanout-test-no-such-package==1\.0"):
        build(stack, tmp_path / "out", cache_dir=CACHE)


def test_an_oversized_package_names_its_largest_parts(tmp_path: Path) -> None:
    stack = tiny_stack(tmp_path, "")
    (tmp_path / "code" / "models").mkdir()
    (tmp_path / "code" / "models" / "weights.bin").write_bytes(b"\0" * (3 * 2**20))
    (tmp_path / "code" / "noise.bin").write_bytes(__import__("os").urandom(2 * 2**20))
    with pytest.raises(UsageError, match=r"unzipped is over .*the largest: models 3\.0 MiB, noise"):
        build(stack, tmp_path / "out", cache_dir=CACHE, limits=PackageLimits(unzipped=4 * 2**20))
    with pytest.raises(UsageError, match=r"the zip is 2\.0 MiB, over the 1 MiB .*noise\.bin 2\.0"):
        build(stack, tmp_path / "out", cache_dir=CACHE, limits=PackageLimits(zipped=2**20))
    assert list((tmp_path / "out").glob("*.zip*")) == []  # nothing half-written left behind


def test_requirements_that_list_aiofanout_are_refused(tmp_path: Path) -> None:
    stack = tiny_stack(tmp_path, "requests\naiofanout[aws]>=0.1  # mine\n")
    bundled = stack.model_copy(
        update={"functions": [stack.functions[0].model_copy(update={"bundle_aiofanout": True})]}
    )
    with pytest.raises(UsageError, match="lists aiofanout, which build bundles itself"):
        build(bundled, tmp_path / "out", cache_dir=CACHE)


def test_the_build_command_writes_and_says_where(tmp_path: Path) -> None:
    tiny_stack(tmp_path, "")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "aiofanout", "build", "--config", str(tmp_path / "stack.toml")]
    done = subprocess.run(
        [*command, "--out", str(out), "--cache-dir", str(CACHE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"{out / 'tiny.zip'}" in done.stdout
    assert "sam deploy --guided --template-file" in done.stdout
    assert names(out / "tiny.zip") == ["app.py", "requirements.txt"]
    (tmp_path / "stack.toml").write_text("[[function]]\nname = 'x'\n")
    failed = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, timeout=60, check=False
    )
    assert failed.returncode == 2
    assert "handler: Field required" in failed.stderr
