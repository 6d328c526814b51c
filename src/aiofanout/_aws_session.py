"""The aioboto3 session of the pieces that talk to AWS themselves (claims, journals, sources)."""

from __future__ import annotations

from typing import Any

from ._errors import UsageError


def aws_session(session: Any, feature: str) -> Any:
    """``session`` if given, else a new aioboto3 ``Session``.

    aioboto3 is an extra: without it, raise a :class:`UsageError` that names ``feature`` and
    the install command.
    """
    if session is not None:
        return session
    try:
        import aioboto3
    except ImportError as exc:  # pragma: no cover - depends on the extras installed
        raise UsageError(f"{feature} need: pip install 'aiofanout[aws]'") from exc
    return aioboto3.Session()
