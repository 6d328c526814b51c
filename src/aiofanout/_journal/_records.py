"""The journal's lines: one JSON object per item that reached a terminal state.

``{"i": 12, "s": "succeeded", "v": <value>, "a": 1, "t": 0.25}`` for a success,
``{"i": 13, "s": "failed", "e": {"type": "TaskFailed", "message": "..."}, "a": 3, "t": 1.5}``
otherwise: the item's index in the input, its status, its value or its error's type and message,
its attempts and the seconds it took. The same lines make up a manifest's result parts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .._errors import JournalError, RecordedError, UsageError
from .._outcome import STATUSES, SUCCEEDED, Attempt

__all__ = ["JournalRecord", "encode_record", "peek_lines", "records_of", "split_lines"]

_STATUS_CODES = {status.value: code for code, status in enumerate(STATUSES)}
_STATUS_BYTES = {status.encode(): code for status, code in _STATUS_CODES.items()}
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # made once: not per line
#: How :func:`encode_record` starts every line: the index and the status, nothing before them.
_HEAD = re.compile(rb'\{"i":(0|[1-9]\d*),"s":"([a-z_]+)"[,}]')


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """One line of a journal, read back."""

    index: int
    status: int  # a status code, as in the engine's columns
    value: Any
    error: dict[str, str] | None
    attempts: int
    elapsed: float

    @classmethod
    def of(cls, line: Any) -> JournalRecord:
        """The record of a parsed line (``KeyError``, ``TypeError``, ``ValueError`` if not one)."""
        return cls(
            int(line["i"]),
            _STATUS_CODES[line["s"]],
            line.get("v"),
            line.get("e"),
            int(line.get("a", 1)),
            float(line.get("t", 0.0)),
        )

    def attempt(self) -> Attempt:
        """The record as the engine's ``(status, value, error)``."""
        error = None
        if self.error is not None:
            error = RecordedError(self.error.get("type", "Error"), self.error.get("message", ""))
        return self.status, self.value, error


def encode_record(index: int, result: Attempt, attempts: int, elapsed: float) -> bytes:
    """The journal line of one terminal state; raises ``UsageError`` for a value not JSON."""
    code, value, error = result
    line: dict[str, Any] = {"i": index, "s": STATUSES[code].value}
    if code == SUCCEEDED:
        line["v"] = value
    elif error is not None:
        line["e"] = {"type": type(error).__name__, "message": str(error)}
    line["a"] = attempts
    line["t"] = round(elapsed, 6)
    try:
        return _ENCODER.encode(line).encode() + b"\n"
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"a journal stores JSON: item {index} returned a {type(value).__name__}, which is "
            "not JSON; return a JSON value (dict, list, str, number, bool, None) or drop journal="
        ) from exc


def split_lines(data: bytes, where: str) -> Iterator[tuple[bytes, JournalRecord]]:
    """Each line of one part (newline included) with its record.

    A line that is not a record raises :class:`JournalError`, naming the part and the line.
    """
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            record = JournalRecord.of(line)
        except (ValueError, KeyError, TypeError) as exc:
            raise JournalError(
                f"{where}, line {number}: not a journal record ({exc}); only aiofanout writes "
                "a run's parts: move any other file out of the run's directory or prefix"
            ) from None
        if record.index < 0:
            raise JournalError(
                f"{where}, line {number}: item index {record.index} is negative; the part was "
                "not written by aiofanout: move it out of the run's directory or prefix"
            )
        yield _ended(raw), record


def records_of(data: bytes, where: str) -> list[JournalRecord]:
    """The records of one whole part, parsed as one JSON array (one call, not one per line).

    A part with anything unexpected in it is read again line by line with :func:`split_lines`,
    which names the line that is not a record.
    """
    try:
        lines = json.loads(b"[" + data.rstrip(b"\n").replace(b"\n", b",") + b"]")
        records = [JournalRecord.of(line) for line in lines]
    except (ValueError, KeyError, TypeError):
        records = []
    if not records or any(record.index < 0 for record in records):
        return [record for _, record in split_lines(data, where)]
    return records


def peek_lines(data: bytes, where: str) -> Iterator[tuple[bytes, int, int]]:
    """Each line of one part (newline included) with its index and status code, unparsed.

    What a manifest needs of a line, about ten times faster than :func:`split_lines`: a line
    that starts with the head :func:`encode_record` writes and ends with its closing brace is
    taken as it is; any other line is parsed in full, so a torn or foreign line still raises
    :class:`JournalError`. (What lies between is read when the results are.)
    """
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        head = _HEAD.match(raw)
        whole = raw.endswith((b"}\n", b"}"))
        if whole and head is not None and (code := _STATUS_BYTES.get(head[2])) is not None:
            yield _ended(raw), int(head[1]), code
        elif raw.strip():
            for line, record in split_lines(raw, f"{where}, line {number}"):
                yield line, record.index, record.status


def _ended(raw: bytes) -> bytes:
    return raw if raw.endswith(b"\n") else raw + b"\n"
