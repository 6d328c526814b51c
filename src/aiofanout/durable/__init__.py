"""Fan-outs that outlive their process: a run journal, resume, and resumable sources."""

from __future__ import annotations

__all__: list[str] = []
