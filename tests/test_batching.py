"""The one packer of items into batches by count and bytes (the engine, SQS sends, replies)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from aiofanout.targets import Batching


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=50), max_size=60),
    max_items=st.integers(min_value=1, max_value=12),
    max_bytes=st.none() | st.integers(min_value=1, max_value=120),
)
def test_split_keeps_order_and_every_limit_a_batch_can_keep(
    sizes: list[int], max_items: int, max_bytes: int | None
) -> None:
    batching = Batching(max_items, max_bytes)
    items = list(enumerate(sizes))
    batches = list(batching.split(items, lambda item: item[1]))
    assert [item for batch in batches for item in batch] == items  # nothing lost, in order
    for batch in batches:
        assert 1 <= len(batch) <= max_items
        size = sum(n for _, n in batch)
        assert max_bytes is None or size <= max_bytes or len(batch) == 1  # an item alone fits
    for batch, after in itertools.pairwise(batches):
        # A batch ends only when the next item would not fit in it.
        assert not batching.has_room(len(batch), sum(n for _, n in batch), after[0][1])
