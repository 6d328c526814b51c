"""Where a stack keeps state: the claim-check bucket, the journal bucket, the idempotency table.

Each is a part of the stack (:class:`~aiofanout.deploy.Stack`), checked where it is made, as
the parts in ``_model`` are.
"""

from __future__ import annotations

from pydantic import Field

from .._wire._claims import DEFAULT_PREFIX
from ._model import _Part

__all__ = ["ClaimCheckBucket", "IdempotencyTable", "JournalBucket"]


class ClaimCheckBucket(_Part):
    """The claim-check bucket (payloads over a message limit), expiring what a crash left.

    ``bucket`` is the name locally and, if given, on AWS (S3 names are global: leave it out
    to let CloudFormation choose one, and read it through ``${claim_check.bucket}``).

    Example::

        ClaimCheckBucket(expire_days=1)
    """

    bucket: str | None = None
    prefix: str = DEFAULT_PREFIX
    expire_days: int = Field(default=1, ge=1)

    @property
    def local_name(self) -> str:
        """The bucket's name on the local stack."""
        return self.bucket or "aiofanout-claims"


class JournalBucket(_Part):
    """The bucket of run journals (``S3Journal``); kept when the stack is deleted.

    Example::

        JournalBucket(prefix="runs/")
    """

    bucket: str | None = None
    prefix: str = ""

    @property
    def local_name(self) -> str:
        """The bucket's name on the local stack."""
        return self.bucket or "aiofanout-journal"


class IdempotencyTable(_Part):
    """The DynamoDB table of idempotent tasks (``DynamoDBStore``'s schema and TTL).

    Example::

        IdempotencyTable(table="orders-idempotency")
    """

    table: str = Field(default="aiofanout-idempotency", pattern=r"[A-Za-z0-9_.-]{3,255}")
