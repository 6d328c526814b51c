"""The public surface: sorted, importable, documented, shown under its public path."""

from __future__ import annotations

import importlib
import inspect

import pytest

import aiofanout

PUBLIC_MODULES = [
    "aiofanout",
    "aiofanout.deploy",
    "aiofanout.durable",
    "aiofanout.errors",
    "aiofanout.targets",
    "aiofanout.testing",
    "aiofanout.local",
    "aiofanout.logs",
    "aiofanout.metrics",
    "aiofanout.sim",
    "aiofanout.sync",
    "aiofanout.wire",
    "aiofanout.worker",
]


def test_all_is_sorted_and_unique() -> None:
    assert aiofanout.__all__ == sorted(set(aiofanout.__all__))


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_is_importable_and_documented(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__doc__
    names = module.__all__
    assert names == sorted(set(names))
    for name in names:
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{module_name}.{name} has no docstring"


def test_public_objects_show_the_public_path() -> None:
    for name in aiofanout.__all__:
        obj = getattr(aiofanout, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__module__ == "aiofanout", name


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_module_shows_a_public_path(module_name: str) -> None:
    # The rule: an object shows the shortest public module it can be imported from (the top
    # level for what it re-exports), never a private one.
    module = importlib.import_module(module_name)
    for name in module.__all__:
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        shown = obj.__module__
        assert shown in PUBLIC_MODULES, f"{module_name}.{name} shows {shown}"
        assert getattr(importlib.import_module(shown), name) is obj
        assert len(shown) <= len(module_name)


def test_no_private_module_is_imported_by_tests_or_benchmarks() -> None:
    # Tests, benchmarks and examples use what users use. The exceptions: a white-box test of one
    # internal function imports it inside that test; and the unit tests of four internal
    # machines, the adaptive controller, the reply router and the lean AWS client (its signers,
    # endpoint resolution and credentials; its HTTP connection pool), import them at the top.
    white_box = {
        "tests/test_adaptive.py",
        "tests/test_connection_pool.py",
        "tests/test_fanin.py",
        "tests/test_lean_aws.py",
    }
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    anywhere = re.compile(r"^\s*(from|import) aiofanout(\.\w+)*\._\w+", re.MULTILINE)
    top_level = re.compile(r"^(from|import) aiofanout(\.\w+)*\._\w+", re.MULTILINE)
    offenders = [
        str(path.relative_to(root))
        for folder, rule in (("tests", top_level), ("benchmarks", anywhere), ("examples", anywhere))
        for path in (root / folder).rglob("*.py")
        if rule.search(path.read_text()) and str(path.relative_to(root)) not in white_box
    ]
    assert offenders == []


def test_every_error_is_in_the_tree_drawn_in_the_errors_module() -> None:
    from aiofanout import _errors

    doc = _errors.__doc__ or ""
    for name in _errors.__all__:
        assert name in doc, f"{name} is missing from the tree in _errors.py"
        obj = getattr(aiofanout.errors, name)
        assert issubclass(obj, Exception)
    assert aiofanout.errors.__all__ == _errors.__all__  # every error is public there


def test_no_private_module_leaks_into_all() -> None:
    assert not [n for n in aiofanout.__all__ if n.startswith("_")]


def test_public_classes_and_functions_show_an_example() -> None:
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            is_error = inspect.isclass(obj) and issubclass(obj, BaseException)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and not is_error:
                assert "Example" in (inspect.getdoc(obj) or ""), f"{module_name}.{name}"


def test_the_top_level_holds_what_a_caller_fanning_work_out_imports() -> None:
    # About 30 names: the worker's, a target author's and the rarer errors live in their modules;
    # 34 with dispatch and the four targets (Lambda, SQS, SNS, HTTP).
    assert len(aiofanout.__all__) <= 34
    for worker_name in ("App", "Task", "DynamoDBStore", "lambda_entrypoint"):
        assert worker_name not in aiofanout.__all__
        assert worker_name in aiofanout.worker.__all__


@pytest.mark.parametrize("name", sorted({**aiofanout.MOVED, **aiofanout.RENAMED}))
def test_a_moved_or_renamed_name_still_works_with_a_deprecation_warning(name: str) -> None:
    if name in aiofanout.RENAMED:
        home, new_name = aiofanout, aiofanout.RENAMED[name]
    else:
        home, new_name = importlib.import_module(aiofanout.MOVED[name]), name
    with pytest.warns(DeprecationWarning, match=rf"aiofanout\.{name} is now .*{new_name}"):
        old = getattr(aiofanout, name)
    assert old is getattr(home, new_name)
    assert new_name in home.__all__


def test_a_name_that_never_was_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nonesuch'"):
        _ = aiofanout.Nonesuch


async def test_tolerate_is_the_old_name_of_failure_budget() -> None:
    async def fail(n: int) -> int:
        raise aiofanout.TaskFailed("no")

    with pytest.warns(DeprecationWarning, match=r"tolerate=.*failure_budget="):
        result = await aiofanout.dispatch_many(fail, range(10), concurrency=1, tolerate=2)
    assert result.budget_exceeded
    assert result.stopped is aiofanout.StopReason.BUDGET
    with pytest.raises(aiofanout.UsageError, match="drop one"):
        await aiofanout.dispatch_many(fail, [1], concurrency=1, tolerate=1, failure_budget=1)
