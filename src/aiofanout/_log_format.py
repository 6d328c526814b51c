"""Log records as JSON lines, keyed as AWS Lambda Powertools' Logger keys them.

One object per line, so CloudWatch Logs Insights queries written for Powertools' logs work on
these too (``level``, ``location``, ``message``, ``timestamp``, ``service``, ``xray_trace_id``,
the ``function_*`` keys, ``cold_start``, ``exception``, ``exception_name``), with the fields
that name the work beside them (``run_id``, ``item_index``, ``envelope_id``, ``task``, ...:
see ``_log_fields.py``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import IO, Any

from ._log_fields import FIELDS, ContextFilter, current_fields

__all__ = ["JsonFormatter", "configure"]

# What every LogRecord has: the rest of its attributes came in as extra= (or the filter's).
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line, with Powertools' keys and the work's.

    ``service`` is the ``service`` key (default: ``$POWERTOOLS_SERVICE_NAME``, else
    ``"service_undefined"`` as Powertools writes). The fields that name the work come from the
    record (:class:`ContextFilter`, ``extra=``) or, without the filter, from where it is
    formatted. Other ``extra=`` keys are written too; ``None`` values are left out.

    Example::

        handler = logging.StreamHandler()
        handler.setFormatter(aiofanout.logs.JsonFormatter(service="thumbnails"))
        logging.getLogger().addHandler(handler)
        # {"level":"INFO","location":"resize:12","message":"resized","timestamp":"2026-...",
        #  "service":"thumbnails","logger":"app","envelope_id":"...","task":"resize",...}
    """

    def __init__(self, *, service: str | None = None) -> None:
        super().__init__()
        self.service = service or os.environ.get("POWERTOOLS_SERVICE_NAME", "service_undefined")

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "level": record.levelname,
            "location": f"{record.funcName}:{record.lineno}",
            "message": record.getMessage(),
            "timestamp": _timestamp(record),
            "service": self.service,
            "logger": record.name,
            "xray_trace_id": _xray_trace_id(),
        }
        line.update(_work_fields(record))
        line.update(_extras(record))
        if record.exc_info and record.exc_info[1] is not None:
            line["exception"] = self.formatException(record.exc_info)
            line["exception_name"] = type(record.exc_info[1]).__name__
        if record.stack_info:
            line["stack_trace"] = self.formatStack(record.stack_info)
        return json.dumps(
            {k: v for k, v in line.items() if v is not None}, default=str, ensure_ascii=False
        )


def _timestamp(record: logging.LogRecord) -> str:
    """Powertools' default: ``2026-12-04 20:17:33,774+0000`` (here always UTC)."""
    seconds = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record.created))
    return f"{seconds},{int(record.msecs):03d}+0000"


def _xray_trace_id() -> str | None:
    """The root of Lambda's trace header for this invocation, as Powertools logs it."""
    header = os.environ.get("_X_AMZN_TRACE_ID")
    if not header:
        return None
    return header.split(";")[0].removeprefix("Root=")


def _work_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's own fields (the filter's, ``extra=``) over those where it is formatted.

    Without a filter on the way a record is formatted where it was made (a handler emits in
    the logging call), so the fields there are its own.
    """
    fields = current_fields()
    attributes = record.__dict__
    fields.update((name, attributes[name]) for name in FIELDS if name in attributes)
    return fields


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        name: value
        for name, value in record.__dict__.items()
        if name not in _RECORD_ATTRIBUTES and name not in FIELDS
    }


def configure(
    level: int | str = logging.INFO,
    *,
    service: str | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Log every record as a JSON line naming its work: one call, at start-up.

    Replaces the root logger's handlers (as ``logging.basicConfig(force=True)`` does, so the
    Lambda runtime's plain-text handler goes) with one writing to ``stream`` (default:
    ``sys.stdout``, which Lambda sends to CloudWatch Logs), with a :class:`JsonFormatter` and a
    :class:`ContextFilter`. Every logger that propagates to the root gets the fields, a task's
    own included. Returns the handler.

    Example::

        import aiofanout.logs

        aiofanout.logs.configure(service="thumbnails")   # at module level, in the worker too
        app = App("thumbnails")
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(JsonFormatter(service=service))
    handler.addFilter(ContextFilter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    return handler
