"""The functions a runtime serves: each one's config, environment pool, event queue and stats.

:class:`FunctionRegistry` is the one place functions are added, replaced and looked up: the
Python API (:meth:`LocalLambda.add_function`) and the control plane (``CreateFunction``,
``PutFunctionConcurrency``, ...) write through it, so both see the same :class:`Function`.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .._errors import UsageError
from ._aws import ACCOUNT, function_arn, function_name
from ._config import FunctionConfig
from ._events import EventQueue
from ._faults import Injection
from ._pool import Pool


@dataclass(slots=True)
class FunctionStats:
    """What a function has done so far (see :meth:`LocalLambda.stats`)."""

    invocations: int = 0
    throttles: int = 0
    cold_starts: list[float] = field(default_factory=list)  # seconds, spawn to first poll


@dataclass(slots=True)
class Deployment:
    """What the control plane reports beyond :class:`FunctionConfig` (``FunctionConfiguration``)."""

    runtime: str = f"python{sys.version_info.major}.{sys.version_info.minor}"
    role: str = f"arn:aws:iam::{ACCOUNT}:role/local-lambda"
    description: str = ""
    code_sha256: str = ""
    code_size: int = 0
    last_modified: float = field(default_factory=time.time)
    revision_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def touch(self) -> None:
        """Record a change (a new ``LastModified`` and ``RevisionId``)."""
        self.last_modified = time.time()
        self.revision_id = str(uuid.uuid4())


@dataclass(eq=False)
class Function:
    """A registered function: its config and what the runtime keeps for it.

    ``generation`` counts changes of config or code: an environment started at an older one
    finishes its invocation and retires. ``reserved`` is the reserved concurrency the API
    reports (``None``: none reserved; the pool then allows the runtime's default).
    """

    config: FunctionConfig
    pool: Pool
    events: EventQueue = field(default_factory=EventQueue)
    dice: random.Random = field(default_factory=random.Random)
    stats: FunctionStats = field(default_factory=FunctionStats)
    deployment: Deployment = field(default_factory=Deployment)
    generation: int = 0
    reserved: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # per concern: "event_invoke", ...

    @classmethod
    def create(cls, config: FunctionConfig, *, reserved: bool = True) -> Function:
        """A new function: no environments yet, its fault dice freshly seeded.

        ``reserved``: its ``reserved_concurrency`` is reported as reserved (a Python config
        always states one; ``CreateFunction`` reserves none).
        """
        limit = config.reserved_concurrency
        return cls(
            config, Pool(limit), dice=config.faults.dice(), reserved=limit if reserved else None
        )

    @property
    def name(self) -> str:
        """The function's name."""
        return self.config.name

    @property
    def arn(self) -> str:
        """The function's (unqualified) ARN."""
        return function_arn(self.config.name)

    def draw_faults(self) -> Injection:
        """The faults injected into its next invocation."""
        return self.config.faults.draw(self.dice)

    def summary(self) -> dict[str, Any]:
        """Invocations, throttles, cold starts (ms) and live environments."""
        return {
            "invocations": self.stats.invocations,
            "throttles": self.stats.throttles,
            "cold_starts_ms": [round(c * 1000, 1) for c in self.stats.cold_starts],
            "environments": len(self.pool.members),
        }


class FunctionRegistry:
    """The functions of one runtime, by name."""

    def __init__(self) -> None:
        self._by_name: dict[str, Function] = {}

    def put(self, function: Function) -> Function | None:
        """Add ``function``; return the one of the same name it replaces, if any."""
        old = self._by_name.get(function.name)
        self._by_name[function.name] = function
        return old

    def remove(self, name: str) -> Function | None:
        """Forget the function ``name``; return it, if there was one."""
        return self._by_name.pop(name, None)

    def all(self) -> list[Function]:
        """Every function, by name."""
        return [self._by_name[name] for name in sorted(self._by_name)]

    def find(self, name_or_arn: str) -> Function | None:
        """The function named (or with the ARN) ``name_or_arn``, as the AWS API accepts either."""
        return self._by_name.get(function_name(name_or_arn))

    def get(self, name: str) -> Function:
        """The function named ``name``; :class:`UsageError` if there is none."""
        function = self._by_name.get(name)
        if function is None:
            raise UsageError(f"no local function named {name!r}; add it with add_function()")
        return function
