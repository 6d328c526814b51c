"""From the laptop to AWS: one description of a stack, built into a SAM template and zips.

A stack file (TOML) describes the functions, queues, mappings, SNS topics and their
subscriptions, schedules and aiofanout's own
resources (the claim-check bucket, the idempotency table, the journal bucket) once: ``python
-m aiofanout serve --config stack.toml`` runs it locally, and ``python -m aiofanout build
--config stack.toml --out build`` writes ``build/template.yaml`` (a SAM template right by
construction: batch item failures reported, visibility timeouts at 6x, dead-letter queues,
least-privilege roles) and one reproducible zip per function with its dependencies resolved
for Lambda. Deploy with ``sam deploy --guided --template-file build/template.yaml``.

Needs the ``deploy`` extra for the YAML (``pip install 'aiofanout[deploy]'``); the model alone
needs only the core.

Example::

    from aiofanout.deploy import Stack, build

    stack = Stack.load("stack.toml")
    built = build(stack, "build", progress=True)
    print(built.template, built.sizes)
"""

from __future__ import annotations

from .._public import show_public_path
from ._build import Built, build
from ._description import Stack
from ._model import (
    EventInvoke,
    Function,
    LocalOptions,
    Queue,
    Schedule,
    SqsMapping,
    Statement,
    Subscription,
    Topic,
)
from ._package import PackageLimits
from ._stores import ClaimCheckBucket, IdempotencyTable, JournalBucket
from ._template import sam_template

__all__ = [
    "Built",
    "ClaimCheckBucket",
    "EventInvoke",
    "Function",
    "IdempotencyTable",
    "JournalBucket",
    "LocalOptions",
    "PackageLimits",
    "Queue",
    "Schedule",
    "SqsMapping",
    "Stack",
    "Statement",
    "Subscription",
    "Topic",
    "build",
    "sam_template",
]

show_public_path(__name__, __all__, globals())
