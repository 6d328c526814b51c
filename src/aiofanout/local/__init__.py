"""The local AWS: a Lambda runtime running handlers through awslambdaric, plus a moto server.

Together they are the embedded stack, so a fan-out runs on one machine with no AWS account.

Needs the ``local`` extra: ``pip install 'aiofanout[local]'``.

Example::

    from aiofanout.local import FunctionConfig, stack

    async with stack() as aws:
        aws.add_function(FunctionConfig("worker", "worker.lambda_handler",
                                        code_paths=["examples"]))
        ...
"""

from __future__ import annotations

from ._config import EventSourceMapping, Faults, FunctionConfig
from ._runtime import LocalLambda
from ._stack import LocalAws, stack

__all__ = ["EventSourceMapping", "Faults", "FunctionConfig", "LocalAws", "LocalLambda", "stack"]
