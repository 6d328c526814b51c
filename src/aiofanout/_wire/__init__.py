"""The wire format in one place: what crosses between a sender and a worker. JSON only.

- ``_envelopes``: the task and reply envelope models, encode/decode, signatures, Lambda's
  function-error payload;
- ``_items``: fan-out items (``Call``, the depth and deadline handed on from the running task,
  raw JSON);
- ``_outgoing``: what a sender sends for an item: the envelope prepared once (``TaskSpec``
  describes the task) and finished per attempt, its claim, the one message type of the
  Lambda and SQS targets (``Outgoing``);
- ``_claims``: payloads over a message limit through S3 (``ClaimCheck``, the reference);
- ``_reply_values``: how a reply or a function error turns back into a value or a library error.

Senders (targets, eager tasks) and workers import from here; nothing here knows the worker's
registry or a target's transport. The public face is :mod:`aiofanout.wire`.
"""

from __future__ import annotations

from ._claims import ClaimCheck, join_task
from ._envelopes import (
    ENVELOPE_VERSION,
    ClaimRef,
    ErrorInfo,
    LambdaErrorPayload,
    ReplyEnvelope,
    TaskEnvelope,
    check_secret,
    decode_reply,
    decode_task,
    encode_reply,
    lambda_error_body,
    new_id,
    now_ms,
    secret_from_env,
    sign,
    sign_reply,
    verify,
)
from ._items import (
    DEFAULT_MAX_DEPTH,
    Call,
    current_deadline_ms,
    current_depth,
    dispatch_depth,
    encode_raw_json,
    split_item,
)
from ._outgoing import (
    Claim,
    DescribesTask,
    Outgoing,
    PreparedEnvelope,
    TaskSpec,
    encode_task,
    envelope_encoder,
    prepare_envelope,
    task_spec,
)
from ._reply_values import error_from_info, error_info, function_error, reply_value, unwrap_reply

__all__ = [
    "Call",
    "Claim",
    "ClaimCheck",
    "ClaimRef",
    "DEFAULT_MAX_DEPTH",
    "DescribesTask",
    "ENVELOPE_VERSION",
    "ErrorInfo",
    "LambdaErrorPayload",
    "Outgoing",
    "PreparedEnvelope",
    "ReplyEnvelope",
    "TaskEnvelope",
    "TaskSpec",
    "check_secret",
    "current_deadline_ms",
    "current_depth",
    "decode_reply",
    "decode_task",
    "dispatch_depth",
    "encode_raw_json",
    "encode_reply",
    "encode_task",
    "envelope_encoder",
    "error_from_info",
    "error_info",
    "function_error",
    "join_task",
    "lambda_error_body",
    "new_id",
    "now_ms",
    "prepare_envelope",
    "reply_value",
    "secret_from_env",
    "sign",
    "sign_reply",
    "split_item",
    "task_spec",
    "unwrap_reply",
    "verify",
]
