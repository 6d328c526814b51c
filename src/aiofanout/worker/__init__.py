"""The worker side: a registry of tasks and the Lambda entry points that run them.

``App`` registers tasks (``@app.task``) and runs the envelopes that name them; its
``lambda_handler`` answers a direct invoke (one envelope), a chunk (a list of envelopes) and an
SQS batch (with ``batchItemFailures``), and sends replies to an envelope's ``reply_to`` queue.
``lambda_entrypoint`` turns any ``async def handler(event, context)`` into the sync function
Lambda calls, on a ``LoopRunner`` that keeps one event loop across warm invocations.
``@app.task(idempotent=True)`` runs a task once per idempotency key, its reply kept in the app's
store (``DynamoDBStore``; ``MemoryStore`` for tests; any ``IdempotencyStore``).
``App(records=TaskRecords(table))`` writes a record per task run, keyed by the envelope's id;
``@app.on_init`` functions run once per execution environment, before its first envelope.

Example::

    from aiofanout.worker import App

    app = App("worker")

    @app.task
    async def double(x: int) -> int:
        return 2 * x

    lambda_handler = app.lambda_handler   # handler setting: module.lambda_handler
"""

from __future__ import annotations

from .._public import show_public_path
from ._app import App
from ._dynamodb import DynamoDBStore
from ._idempotency import IdempotencyStore, MemoryStore
from ._runner import LoopRunner, lambda_entrypoint
from ._task import Task
from ._task_records import TaskRecord, TaskRecords

__all__ = [
    "App",
    "DynamoDBStore",
    "IdempotencyStore",
    "LoopRunner",
    "MemoryStore",
    "Task",
    "TaskRecord",
    "TaskRecords",
    "lambda_entrypoint",
]

show_public_path(__name__, __all__, globals())
