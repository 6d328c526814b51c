"""A worker that logs JSON lines (aiofanout.logs.configure), run by the local runtime."""

from __future__ import annotations

import logging

import aiofanout.logs
from aiofanout.worker import App

aiofanout.logs.configure(service="e2e-logs")  # at import: the runtime's text handler goes
app = App("e2e-logs")
log = logging.getLogger("e2e.audit")


@app.task
async def audit(account: str) -> str:
    log.info("auditing")  # the task's own logger: the fields come from the handler's filter
    return "audited"


lambda_handler = app.lambda_handler
