"""Fan-outs that outlive their process: a run journal, resume, and resumable sources.

``dispatch_many(..., journal=...)`` records each item's terminal state as it ends, under a run
id, and writes a manifest of succeeded and failed parts at the end; :func:`resume` finishes a
run that stopped (a crash, a killed container) without running again what succeeded::

    from aiofanout.durable import S3Journal, resume

    journal = S3Journal("my-runs-bucket")
    result = await dispatch_many(target, items, concurrency=100, journal=journal)
    print(result.run_id, result.manifest["counts"])
    # the process died? anywhere, later:
    result = await resume(run_id, target, items, concurrency=100, journal=journal)

An orchestrator Lambda whose input does not fit in one invocation calls :func:`orchestrate`:
it stops taking items before its time is up, writes its cursor to the journal and invokes
itself to go on, over as many invocations as it takes, and the last one writes the manifest.
Its input is a *source*, read from a position: a list or a range (:class:`SequenceSource`), or
an S3 object of JSON lines or CSV read by byte range (:class:`S3Lines`).
"""

from __future__ import annotations

from .. import __all__ as _top_level
from .._engine import resume
from .._journal import FileJournal, Journal, S3Journal
from .._public import show_public_path
from ._continuation import orchestrate, resume_event
from ._s3_lines import S3Lines
from ._sources import Position, SequenceSource, Source, SourceItem

__all__ = [
    "FileJournal",
    "Journal",
    "Position",
    "S3Journal",
    "S3Lines",
    "SequenceSource",
    "Source",
    "SourceItem",
    "orchestrate",
    "resume",
    "resume_event",
]

# What the top level exports too shows ``aiofanout`` (the shortest public path).
show_public_path(__name__, sorted(set(__all__) - set(_top_level)), globals())
