"""Service limits as data: AWS raises them now and then, so they are settings, not constants."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ._errors import UsageError

__all__ = ["PayloadLimits"]

MB = 1024 * 1024
KiB = 1024


@dataclass(frozen=True, slots=True)
class PayloadLimits:
    """Payload limits checked before anything is sent. An item over a limit fails alone.

    The defaults are AWS's as of 2025 (Lambda async payloads and SQS messages went from 256 KB to
    1 MB that year). Pass your own when AWS changes them.

    Example::

        limits = PayloadLimits(lambda_async_payload=2 * 1024 * 1024)
        LambdaTarget("worker", task="resize", limits=limits)

    Attributes:
        lambda_sync_payload: bytes of a ``RequestResponse`` invoke payload (6 MB).
        lambda_async_payload: bytes of an ``Event`` invoke payload (1 MB).
        sqs_message: bytes of one SQS message body (1 MiB).
        sqs_batch: bytes of one ``SendMessageBatch`` request, all bodies together (1 MiB).
        sqs_batch_entries: entries in one ``SendMessageBatch`` request (10).
        sns_message: bytes of one SNS message (256 KiB).
        sns_batch: bytes of one ``PublishBatch`` request, all messages together (256 KiB).
        sns_batch_entries: entries in one ``PublishBatch`` request (10).

    """

    lambda_sync_payload: int = 6 * MB
    lambda_async_payload: int = 1 * MB
    sqs_message: int = 1 * MB
    sqs_batch: int = 1 * MB
    sqs_batch_entries: int = 10
    sns_message: int = 256 * KiB
    sns_batch: int = 256 * KiB
    sns_batch_entries: int = 10

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or value < 1:
                raise UsageError(
                    f"PayloadLimits({f.name}=...) must be a positive int, got {value!r}"
                )
