"""The wire format: round trips, signatures, refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiofanout import UsageError
from aiofanout.errors import BadSignature, InvalidEnvelope
from aiofanout.wire import ReplyEnvelope, decode_reply, decode_task, encode_reply, encode_task

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200)
@given(
    args=st.lists(json_values, max_size=4),
    kwargs=st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=3),
    secret=st.one_of(st.none(), st.text(min_size=1, max_size=20)),
)
@pytest.mark.slow
def test_any_json_arguments_survive_the_round_trip(
    args: list[Any], kwargs: dict[str, Any], secret: str | None
) -> None:
    raw = encode_task("t", args, kwargs, batch_id="b", depth=2, secret=secret)
    envelope = decode_task(raw, secret=secret)
    assert envelope.args == args
    assert envelope.kwargs == kwargs
    assert envelope.task == "t"
    assert envelope.depth == 2
    assert envelope.batch_id == "b"
    assert (envelope.sig is not None) == (secret is not None)


@settings(max_examples=200)
@given(
    args=st.lists(json_values, min_size=1, max_size=3),
    position=st.integers(min_value=0),
    replacement=st.integers(0, 255),
)
@pytest.mark.slow
def test_any_tampering_with_a_signed_envelope_is_refused(
    args: list[Any], position: int, replacement: int
) -> None:
    raw = bytearray(encode_task("t", args, {}, secret="s3cret"))
    position %= len(raw)
    if raw[position] == replacement:
        replacement = (replacement + 1) % 256
    raw[position] = replacement
    with pytest.raises((BadSignature, InvalidEnvelope)):
        decode_task(bytes(raw), secret="s3cret")


def test_a_changed_field_with_the_old_signature_is_refused() -> None:
    data = json.loads(encode_task("pay", [10], {}, secret="k"))
    data["args"] = [10_000]
    with pytest.raises(BadSignature, match="does not match"):
        decode_task(data, secret="k")


def test_unsigned_and_wrong_secret_are_refused_when_a_secret_is_set() -> None:
    with pytest.raises(BadSignature, match="unsigned"):
        decode_task(encode_task("t", [1], {}), secret="k")
    with pytest.raises(BadSignature):
        decode_task(encode_task("t", [1], {}, secret="other"), secret="k")


def test_unknown_versions_and_fields_are_refused_with_a_clear_error() -> None:
    data = json.loads(encode_task("t", [1], {}))
    with pytest.raises(InvalidEnvelope, match="version 2"):
        decode_task({**data, "v": 2})
    with pytest.raises(InvalidEnvelope, match="Extra inputs"):
        decode_task({**data, "import": "os.system"})
    with pytest.raises(InvalidEnvelope, match="not JSON"):
        decode_task(b"{not json")
    with pytest.raises(InvalidEnvelope, match="JSON object"):
        decode_task(b"[1, 2]")
    with pytest.raises(InvalidEnvelope, match="task"):
        decode_task({"v": 1, "id": "x"})


def test_non_json_arguments_fail_before_anything_is_sent() -> None:
    with pytest.raises(UsageError, match="JSON"):
        encode_task("t", [{1, 2}], {})
    with pytest.raises(UsageError, match="JSON"):
        encode_task("t", [float("nan")], {})


def test_the_size_is_the_length_of_the_bytes_sent() -> None:
    raw = encode_task("t", ["é" * 100], {}, secret="k")
    assert isinstance(raw, bytes)
    assert len(raw) > 200  # UTF-8: two bytes per "é"
    assert decode_task(raw, secret="k").args == ["é" * 100]


def test_reply_round_trip() -> None:
    reply = ReplyEnvelope(id="1", ok=True, value={"a": [1, 2]})
    assert decode_reply(encode_reply(reply)) == reply
