"""Running a template on the local stack: :class:`Template` and what it deploys.

:meth:`Template.load` reads and checks the template (nothing starts); :meth:`Template.deploy`
creates its resources on a running :func:`~aiofanout.local.stack`, in dependency order, starts
its schedules, resolves its ``Outputs``, and stops the schedules when the block ends. What it
created stays until the stack stops (a failure midway leaves what was created so far: the local
stack is thrown away with it, so nothing is rolled back).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._errors import UsageError
from ..._log_fields import library_logger
from ._document import Document, read_document
from ._intrinsics import Created, Resolver, text
from ._kinds import Context, Kind, Resource
from ._lambdas import FUNCTION
from ._moto_resources import BUCKET, QUEUE, TABLE
from ._schedules import Scheduler
from ._topics import SUBSCRIPTION, TOPIC
from ._triggers import INVOKE_CONFIG, MAPPING, RULE

if TYPE_CHECKING:
    from .._stack import LocalAws

KINDS: dict[str, Kind] = {
    kind.type: kind
    for kind in (BUCKET, FUNCTION, INVOKE_CONFIG, MAPPING, QUEUE, RULE, SUBSCRIPTION, TABLE, TOPIC)
}
log = library_logger("aiofanout.local")


@dataclass(frozen=True, slots=True)
class DeployedTemplate:
    """What :meth:`Template.deploy` created: names by logical id, and the resolved ``Outputs``.

    Example::

        async with template.deploy(aws) as deployed:
            url = deployed.queues["WorkQueue"]      # the queue's URL on the moto server
            name = deployed.functions["Worker"]     # the function's name on the runtime
            print(deployed.outputs["WorkQueueUrl"])
    """

    stack_name: str
    functions: Mapping[str, str] = field(default_factory=dict)  # logical id: function name
    queues: Mapping[str, str] = field(default_factory=dict)  # logical id: queue URL
    buckets: Mapping[str, str] = field(default_factory=dict)  # logical id: bucket name
    tables: Mapping[str, str] = field(default_factory=dict)  # logical id: table name
    resources: Mapping[str, str] = field(default_factory=dict)  # logical id: Ref, if created
    outputs: Mapping[str, str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()  # one line each: what was not created, and why
    lines: tuple[tuple[str, str, str], ...] = ()  # (what, logical id, detail), in order

    def report(self) -> str:
        """What was created and the outputs, a line each (what ``serve --template`` prints).

        What was skipped is in :attr:`skipped` (and logged when the deploy starts).
        """
        width = max([len(name) for _, name, _ in self.lines] + [len(o) for o in self.outputs] + [1])
        lines = [f"template stack {self.stack_name!r}:"]
        lines += [f"  {what:<13} {name:<{width}}  {detail}" for what, name, detail in self.lines]
        lines += [
            f"  {'output':<13} {name:<{width}}  {value}" for name, value in self.outputs.items()
        ]
        return "\n".join(lines)


class Template:
    """A SAM or CloudFormation template, read and checked for the local stack.

    ``parameters`` override the template's ``Parameters`` defaults (values as strings);
    ``strict`` refuses, with a :class:`~aiofanout.UsageError` listing them, the resource types
    and properties the local stack would skip or ignore (IAM is accepted: not enforced
    locally). Local code paths (``CodeUri``) are relative to the template's directory;
    generated names are ``<stack_name>-<LogicalId>``.

    Example::

        template = Template.load("build/template.yaml", parameters={"Stage": "dev"})
        async with stack() as aws, template.deploy(aws) as deployed:
            target = LambdaTarget(deployed.functions["Worker"], task="resize",
                                  endpoint_url=aws.lambda_endpoint_url)
            await dispatch_many(target, keys, concurrency=10)
    """

    def __init__(self, document: Document) -> None:
        self._document = document

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        parameters: Mapping[str, str] | None = None,
        strict: bool = False,
        stack_name: str = "local",
    ) -> Template:
        """Read and check the template at ``path`` (nothing starts)."""
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,127}", stack_name):
            raise UsageError(
                f"stack_name {stack_name!r}: a letter, then letters, digits and hyphens "
                "(128 at most), as CloudFormation names a stack"
            )
        document = read_document(
            Path(path).resolve(),
            parameters=dict(parameters or {}),
            strict=strict,
            stack_name=stack_name,
            kinds=KINDS,
        )
        return cls(document)

    @property
    def notes(self) -> tuple[str, ...]:
        """What the local stack does otherwise than AWS for this template, a line each."""
        return tuple(str(note) for note in self._document.notes)

    @contextlib.asynccontextmanager
    async def deploy(
        self,
        aws: LocalAws,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        isolated: bool = True,
    ) -> AsyncIterator[DeployedTemplate]:
        """Create the template's resources on ``aws``; its schedules fire until the block ends.

        ``clock`` is what time it is for the schedules (an aware UTC ``datetime``; the wall
        clock by default): a test passes a faster one to see a ``rate(1 minute)`` fire soon.
        Functions run isolated, as AWS runs their package (only their code and what the Lambda
        runtime provides); ``isolated=False`` runs a directory's code in the development mode,
        in front of this process's packages (a zip stays isolated).
        """
        document = self._document
        for note in document.notes:
            log.log(note.level, "%s", note)
        scheduler = Scheduler(clock)
        ctx = Context(
            aws,
            document.resolver(),
            document.stack_name,
            document.path.parent,
            scheduler,
            KINDS,
            isolated=isolated,
        )
        try:
            async with ctx.exits:
                for name, resource in document.resources.items():
                    ctx.resolver.created[name] = await _create(ctx, resource, document)
            yield _deployed(document, ctx)
        finally:
            await scheduler.stop()


async def _create(ctx: Context, resource: Resource, document: Document) -> Created:
    """Create one resource; what goes wrong names it (a moto error too)."""
    from botocore.exceptions import ClientError

    if resource.name in document.placeholders:
        return Created(resource.type, resource.name, placeholder=True)
    try:
        return await KINDS[resource.type].create(ctx, resource)
    except ClientError as exc:
        raise UsageError(f"{resource.where}: the local stack refused it: {exc}") from exc
    except UsageError as exc:
        if str(exc).startswith(resource.where):
            raise
        raise UsageError(f"{resource.where}: {exc}") from exc


def _deployed(document: Document, ctx: Context) -> DeployedTemplate:
    created = ctx.resolver.created
    by_kind: dict[str, dict[str, str]] = {}
    for name, made in created.items():
        if not made.placeholder:
            by_kind.setdefault(made.type, {})[name] = made.ref
    return DeployedTemplate(
        document.stack_name,
        functions=by_kind.get(FUNCTION.type, {}),
        queues=by_kind.get(QUEUE.type, {}),
        buckets=by_kind.get(BUCKET.type, {}),
        tables=by_kind.get(TABLE.type, {}),
        resources={name: made.ref for name, made in created.items() if not made.placeholder},
        outputs=_outputs(document.outputs, ctx.resolver),
        skipped=tuple(str(n) for n in document.notes if n.level >= logging.WARNING),
        lines=tuple(ctx.report),
    )


def _outputs(outputs: Mapping[str, Any], resolver: Resolver) -> dict[str, str]:
    resolved = {}
    for name, output in outputs.items():
        where = f"Outputs.{name}"
        condition = output.get("Condition")
        if condition is not None and not resolver.condition(text(condition, where), where):
            continue
        value = resolver.resolve(output["Value"], f"{where}.Value")
        items = value if isinstance(value, list) else [value]
        resolved[name] = ",".join(text(item, where) for item in items)
    return resolved
