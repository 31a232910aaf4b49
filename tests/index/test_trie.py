"""The CSR trie against a plain nested-dict reference trie, on random token sequences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from index.trie import MAX_TOKEN_ID, TokenTrie, decode_key, encode_key

token = st.one_of(st.integers(0, 40), st.integers(0, 60_000), st.integers(MAX_TOKEN_ID - 3, MAX_TOKEN_ID))
sequences = st.lists(st.lists(token, min_size=1, max_size=8), min_size=1, max_size=40)


def reference_children(stored: list[list[int]]) -> dict[tuple[int, ...], set[int]]:
    """Next tokens of every prefix, computed the obvious way."""
    children: dict[tuple[int, ...], set[int]] = {}
    for sequence in stored:
        for depth in range(len(sequence)):
            children.setdefault(tuple(sequence[:depth]), set()).add(sequence[depth])
    return children


@given(sequences)
def test_key_encoding_round_trips(stored: list[list[int]]) -> None:
    for sequence in stored:
        assert decode_key(encode_key(sequence)) == sequence


@settings(max_examples=60, deadline=None)
@given(stored=sequences, probes=st.lists(st.lists(token, max_size=4), max_size=10))
def test_next_tokens_equal_a_reference_trie(tmp_path_factory, stored: list[list[int]], probes: list[list[int]]) -> None:
    directory: Path = tmp_path_factory.mktemp("trie")
    TokenTrie.build(stored).save(directory)
    trie = TokenTrie.load(directory)  # memory-mapped, as the server uses it
    expected = reference_children(stored)
    for prefix in [*expected, *map(tuple, probes)]:
        found = trie.next_tokens(list(prefix))
        assert list(found) == sorted(expected.get(prefix, set()))
        assert np.all(np.diff(found) > 0)
    complete = {tuple(sequence) for sequence in stored}
    assert len(trie) == len(complete)
    for sequence in complete:
        sequence_id = trie.sequence_id(list(sequence))
        assert sequence_id is not None and trie.sequence(sequence_id) == list(sequence)
    for prefix in expected:
        assert (prefix in complete) == (list(prefix) in trie)


def test_unknown_prefix_has_no_next_tokens() -> None:
    trie = TokenTrie.build([[1, 2, 3]])
    assert trie.next_tokens([2]).size == 0
    assert trie.next_tokens([1, 2, 3]).size == 0
    assert trie.sequence_id([1, 2]) is None


def test_token_ids_out_of_range_are_refused() -> None:
    for bad in ([-1], [MAX_TOKEN_ID + 1]):
        try:
            TokenTrie.build([bad])
        except ValueError as error:
            assert "token ids" in str(error)
        else:
            raise AssertionError(f"{bad} accepted")
