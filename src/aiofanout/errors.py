"""Every error aiofanout raises or records, in one tree (the tree is in ``aiofanout._errors``).

The errors a caller catches most (``FanoutError``, ``TaskFailed``, ``Throttled``, ...) are also
importable from ``aiofanout`` itself; the rest (an envelope a worker refused, a journal that
could not be written, an idempotency key in use) live here.

Example::

    from aiofanout.errors import InProgress, TaskFailed

    try:
        value = await target.call(payload, timeout=10)
    except InProgress:
        ...  # an idempotent task's key is running elsewhere: try again later
"""

from __future__ import annotations

from . import _errors
from ._errors import *  # noqa: F403  (the tree, as _errors exports it)
from ._public import show_public_path

__all__ = list(_errors.__all__)

show_public_path(__name__, __all__, globals(), unless_shown_higher_up=True)
