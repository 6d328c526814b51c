"""Logs that name the work: which run, item, envelope, task, attempt, Lambda request, SQS message.

Every record aiofanout writes carries, as attributes (as ``extra=`` would), what identifies the
work it was written for, where that is known: ``run_id``, ``item_index``, ``attempt``,
``envelope_id``, ``batch_id``, ``task``, ``message_id`` (the SQS ``messageId``) and, in a
worker, the invocation's ``function_request_id``, ``function_name``, ``function_arn``,
``function_memory_size`` and ``cold_start``. Never an argument, a value or a secret.

:func:`configure` writes every record as one JSON object per line, with the keys AWS Lambda
Powertools' Logger writes (``level``, ``location``, ``message``, ``timestamp``, ``service``,
``xray_trace_id``, ``exception``, ``exception_name``, the ``function_*`` keys), so CloudWatch
Logs Insights queries work on both. A task's own ``logging.getLogger(...)`` gets the same fields
through the handler's :class:`ContextFilter`.

Example::

    import logging
    import aiofanout.logs

    aiofanout.logs.configure(service="thumbnails")
    log = logging.getLogger("thumbnails")

    @app.task
    async def resize(key: str) -> str:
        log.info("resizing")   # {"message":"resizing","envelope_id":"...","task":"resize",...}
        ...
"""

from __future__ import annotations

from ._log_fields import FIELDS, ContextFilter, current_fields
from ._log_format import JsonFormatter, configure
from ._public import show_public_path

__all__ = ["ContextFilter", "FIELDS", "JsonFormatter", "configure", "current_fields"]

show_public_path(__name__, __all__, globals())
