"""Packing texts into shared rows: every token lands in exactly one slot and comes back out."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.similarity.packing import assign_rows, pack

lengths_lists = st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=60)


@given(lengths_lists, st.integers(min_value=40, max_value=128))
def test_rows_hold_every_text_without_overlap_or_overflow(lengths: list[int], row_length: int) -> None:
    sizes = np.array(lengths)
    rows, offsets = assign_rows(sizes, row_length)
    assert (offsets >= 0).all() and (offsets + sizes <= row_length).all()
    for row in np.unique(rows):
        members = np.flatnonzero(rows == row)
        spans = sorted((offsets[i], offsets[i] + sizes[i]) for i in members)
        assert all(end <= next_start for (_, end), (next_start, _) in pairwise(spans))
    # first fit leaves at most one row half full or less, so rows < 2 * tokens / row_length + 1
    assert rows.max() + 1 <= max(1, -(-2 * sizes.sum() // row_length))


@given(lengths_lists, st.integers(min_value=40, max_value=96))
def test_split_returns_each_texts_tokens_in_order(lengths: list[int], row_length: int) -> None:
    rng = np.random.default_rng(len(lengths))
    token_ids = [list(rng.integers(5, 1000, size=n)) for n in lengths]
    packed = pack(token_ids, row_length, pad_id=0)
    back = packed.split(packed.input_ids[:, :, None])
    assert [list(ids[:, 0]) for ids in back] == token_ids
    positions = packed.split(packed.position_ids[:, :, None])
    assert all((p[:, 0] == np.arange(len(p))).all() for p in positions)
    assert (packed.input_ids[packed.segments == -1] == 0).all()


@given(lengths_lists)
def test_attention_stays_within_each_text(lengths: list[int]) -> None:
    token_ids = [[7] * n for n in lengths]
    packed = pack(token_ids, 64, pad_id=0)
    allowed = packed.attention_allowed()
    owner = np.full(packed.rows * packed.row_length, -1)
    owner[packed.slots] = np.repeat(np.arange(len(lengths)), lengths)
    owner = owner.reshape(packed.rows, packed.row_length)
    same_text = (owner[:, :, None] == owner[:, None, :]) & (owner[:, :, None] >= 0)
    used = owner >= 0
    np.testing.assert_array_equal(allowed & used[:, :, None], same_text)
    assert allowed.any(axis=2).all()  # no slot is left with nothing to attend to


def test_a_text_longer_than_the_row_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        assign_rows(np.array([3, 65]), 64)


def test_no_texts_make_no_rows() -> None:
    packed = pack([], 16, pad_id=0)
    assert packed.rows == 0 and packed.split(np.zeros((0, 16, 4))) == []
