"""The wire format in one place: what crosses between a sender and a worker. JSON only.

- ``_envelopes``: the task and reply envelope models, encode/decode, signatures, Lambda's
  function-error payload;
- ``_items``: how a fan-out item becomes an envelope (``Call``, the depth and deadline handed on
  from the running task, the encoder a target uses);
- ``_claims``: payloads over a message limit through S3 (``ClaimCheck``, the reference);
- ``_reply_values``: how a reply or a function error turns back into a value or a library error.

Senders (targets, eager tasks) and workers import from here; nothing here knows the worker's
registry or a target's transport. The public face is :mod:`aiofanout.wire`.
"""

from __future__ import annotations

from ._claims import ClaimCheck, join_task, split_task
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
    encode_task,
    lambda_error_body,
    new_id,
    now_ms,
    secret_from_env,
    sign,
    sign_reply,
    verify,
    with_deadline,
)
from ._items import (
    DEFAULT_MAX_DEPTH,
    Call,
    EnvelopeSource,
    build_envelope,
    current_deadline_ms,
    current_depth,
    dispatch_depth,
    encode_raw_json,
    envelope_encoder,
    split_item,
)
from ._reply_values import error_from_info, error_info, function_error, reply_value, unwrap_reply

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "ENVELOPE_VERSION",
    "Call",
    "ClaimCheck",
    "ClaimRef",
    "EnvelopeSource",
    "ErrorInfo",
    "LambdaErrorPayload",
    "ReplyEnvelope",
    "TaskEnvelope",
    "build_envelope",
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
    "reply_value",
    "secret_from_env",
    "sign",
    "sign_reply",
    "split_item",
    "split_task",
    "unwrap_reply",
    "verify",
    "with_deadline",
]
