"""The CSR trie against a plain nested-dict reference trie, on random token sequences."""

from __future__ import annotations

from pathlib import Path

import marisa_trie
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index.trie import MAX_TOKEN_ID, FlatSequences, TokenTrie, decode_key, encode_key

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


@settings(max_examples=40, deadline=None)
@given(stored=sequences)
def test_key_ids_are_those_of_a_trie_of_every_distinct_prefix(stored: list[list[int]]) -> None:
    """Each prefix is fed once, so key ids (the index's sequence ids) match a build from a set of prefixes."""
    prefixes = {""} | {encode_key(sequence[:end]) for sequence in stored for end in range(1, len(sequence) + 1)}
    reference = marisa_trie.Trie(prefixes)
    trie, sequence_ids = TokenTrie.build_flat(FlatSequences.of(stored))
    assert trie.node_count == len(reference)
    assert [trie.sequence_id(sequence) for sequence in stored] == [reference[encode_key(s)] for s in stored]
    assert sequence_ids.tolist() == [reference[encode_key(sequence)] for sequence in stored]


def test_a_memory_mapped_flat_file_builds_the_same_trie(tmp_path: Path) -> None:
    stored = [[5, 6, 1], [5, 7, 1], [5, 6, 1], [9, 1]]
    flat = FlatSequences.of(stored)
    flat.tokens.astype(np.int32).tofile(tmp_path / "tokens")
    mapped = FlatSequences(np.memmap(tmp_path / "tokens", dtype=np.int32, mode="r"), flat.lengths)
    trie, sequence_ids = TokenTrie.build_flat(mapped)
    assert sequence_ids.tolist() == [trie.sequence_id(s) for s in stored] and sequence_ids[0] == sequence_ids[2]
    assert trie.next_tokens([5]).tolist() == [6, 7] and len(trie) == 3


def test_lengths_must_cover_the_tokens() -> None:
    with pytest.raises(ValueError, match="lengths add up to 2"):
        FlatSequences(np.array([1, 2, 3]), np.array([2]))
