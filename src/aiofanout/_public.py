"""Make public objects show their public path (``aiofanout.targets.LambdaTarget``).

Reprs, docs and tracebacks then name the module a user imports from, never a private one. Only
classes and functions are touched: a type alias or an instance refuses, or must not change.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterable, Mapping
from typing import Any


def show_public_path(
    module: str,
    names: Iterable[str],
    namespace: Mapping[str, Any],
    *,
    unless_shown_higher_up: bool = False,
) -> None:
    """Set ``__module__`` of each class and function in ``names`` to ``module``.

    ``unless_shown_higher_up``: leave an object that already shows a parent package of
    ``module`` (``aiofanout`` re-exports it): the shorter public path wins.
    """
    for name in names:
        obj = namespace[name]
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if unless_shown_higher_up and module.startswith(f"{obj.__module__}."):
            continue
        with contextlib.suppress(AttributeError, TypeError):  # builtins refuse
            obj.__module__ = module
