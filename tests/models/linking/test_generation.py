"""Trie-constrained beam search: a finished beam is always a complete sequence of its trie."""

from __future__ import annotations

import numpy as np
import torch

from index.trie import TokenTrie
from models.linking.engine import LinkingEngine
from models.linking.generation import TrieConstraint, constrained_beam_search
from models.linking.seq2seq import Seq2SeqModel


def test_an_empty_allowed_set_offers_only_the_end_token() -> None:
    constraint = TrieConstraint([TokenTrie.build([[5, 6]])], prefix_length=1, end_token=102)
    assert list(constraint(0, torch.tensor([101, 5]))) == [6]
    assert list(constraint(0, torch.tensor([101, 7]))) == [102]  # fell off the trie
    assert list(constraint(0, torch.tensor([101, 5, 6]))) == [102]  # complete, no continuation


def test_dead_end_trie_does_not_crash_and_returns_nothing_invalid(engine: LinkingEngine) -> None:
    model: Seq2SeqModel = engine.model
    names = model.tokens.encode_names(["paris", "france"])
    without_end = TokenTrie.build(names)  # sequences that never reach the end token: every beam dead-ends
    with_end = TokenTrie.build([[*names[0], model.tokens.special_tokens.end]])
    found = constrained_beam_search(model, ["paris", "france"], [without_end, with_end], num_beams=2, max_new_tokens=6)
    assert found[0] == []
    assert [list(h.tokens) for h in found[1]] == [[*names[0], model.tokens.special_tokens.end]]
    assert np.isfinite(found[1][0].score)
