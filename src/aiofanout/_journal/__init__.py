"""The run journal (private; the public face is :mod:`aiofanout.durable`)."""

from __future__ import annotations

from ._journal import FileJournal, Journal, S3Journal, check_run_id, new_run_id
from ._records import JournalRecord
from ._writer import RunWriter

__all__ = [
    "FileJournal",
    "Journal",
    "JournalRecord",
    "RunWriter",
    "S3Journal",
    "check_run_id",
    "new_run_id",
]
