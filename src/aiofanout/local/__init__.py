"""The local AWS: a Lambda runtime running handlers through awslambdaric, plus a moto server.

Together they are the embedded stack, so a fan-out runs on one machine with no AWS account.

Needs the ``local`` extra: ``pip install 'aiofanout[local]'``. The configuration objects
(:class:`FunctionConfig`, :class:`EventSourceMapping`, :class:`Faults`) need only the core; the
runtime and the stack load aiohttp when first used, so :mod:`aiofanout.testing` and anything else
that only configures can import this package without the extra.

Example::

    from aiofanout.local import FunctionConfig, stack

    async with stack() as aws:
        aws.add_function(FunctionConfig("worker", "worker.lambda_handler",
                                        code_paths=["examples"]))
        ...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .._errors import UsageError
from .._public import show_public_path
from ._config import AccountLimits, EventSourceMapping, FunctionConfig
from ._faults import Faults

if TYPE_CHECKING:
    from ._runtime import LocalLambda
    from ._stack import LocalAws, stack
    from ._template._deploy import DeployedTemplate, Template

__all__ = [
    "AccountLimits",
    "DeployedTemplate",
    "EventSourceMapping",
    "Faults",
    "FunctionConfig",
    "LocalAws",
    "LocalLambda",
    "Template",
    "stack",
]

# The names that need aiohttp (or PyYAML), and their modules: loaded on first access (PEP 562).
_NEEDS_AIOHTTP = {
    "DeployedTemplate": "._template._deploy",
    "LocalAws": "._stack",
    "LocalLambda": "._runtime",
    "Template": "._template._deploy",
    "stack": "._stack",
}

show_public_path(
    __name__, ["AccountLimits", "EventSourceMapping", "Faults", "FunctionConfig"], globals()
)


def __getattr__(name: str) -> Any:
    if name not in _NEEDS_AIOHTTP:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        loaded = {
            lazy: getattr(importlib.import_module(module, __name__), lazy)
            for lazy, module in _NEEDS_AIOHTTP.items()
        }
    except ModuleNotFoundError as exc:
        raise UsageError(
            f"aiofanout.local.{name} needs {exc.name}: pip install 'aiofanout[local]'"
        ) from exc
    show_public_path(__name__, loaded, loaded)
    globals().update(loaded)  # later lookups skip this function
    return loaded[name]


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
