"""Beam search constrained by a token trie, through transformers' ``prefix_allowed_tokens_fn``.

At each step the trie says which tokens may follow what a beam has written so far, so a
finished beam is always a complete sequence of the trie. Two details make it total:

- a prefix with no continuation (a beam that fell off the trie) is offered only the end token,
  since recent transformers raise on an empty allowed list; such a beam is dropped at the end;
- every returned hypothesis is checked against its trie once more before it is returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from models.linking.seq2seq import Seq2SeqModel


class NextTokenSource(Protocol):
    """A trie as generation sees it (``index.trie.TokenTrie`` is one)."""

    def next_tokens(self, prefix: Sequence[int]) -> np.ndarray: ...

    def __contains__(self, sequence: Sequence[int]) -> bool: ...


@dataclass(frozen=True)
class Hypothesis:
    """One generated sequence (after the decoder's start tokens, end token included) and its
    log-probability under the model."""

    tokens: tuple[int, ...]
    score: float


@dataclass
class TrieConstraint:
    """The ``prefix_allowed_tokens_fn`` for a batch whose row ``i`` is constrained by ``tries[i]``."""

    tries: Sequence[NextTokenSource]
    prefix_length: int
    end_token: int

    def __call__(self, batch_id: int, input_ids: torch.Tensor) -> Sequence[int]:
        allowed = self.tries[batch_id].next_tokens(input_ids[self.prefix_length :].tolist())
        if len(allowed) == 0:
            return [self.end_token]
        return torch.from_numpy(np.asarray(allowed, dtype=np.int64))


def _finished(tokens: list[int], end_token: int) -> tuple[int, ...]:
    """The tokens up to and including the first end token (beams are padded after it)."""
    if end_token in tokens:
        return tuple(tokens[: tokens.index(end_token) + 1])
    return tuple(tokens)


def _greedy_log_probabilities(output: object, start: int, end_token: int) -> list[list[float]]:
    """Sum of the model's (unconstrained) log-probabilities of each greedy sequence, up to its end token."""
    chosen = output.sequences[:, start:]
    log_probs = torch.log_softmax(torch.stack(output.logits, dim=1).float(), dim=-1)
    token_scores = log_probs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
    after_end = (chosen == end_token).long().cumsum(dim=1) - (chosen == end_token).long() > 0
    return token_scores.masked_fill(after_end, 0.0).sum(dim=1, keepdim=True).tolist()


def constrained_beam_search(
    model: Seq2SeqModel,
    inputs: Sequence[str],
    tries: Sequence[NextTokenSource],
    num_beams: int,
    max_new_tokens: int,
    max_input_tokens: int = 256,
) -> list[list[Hypothesis]]:
    """Up to ``num_beams`` hypotheses per input, best first, each a complete sequence of its trie.

    One ``generate`` call serves the whole batch; ``inputs[i]`` is constrained by ``tries[i]``.
    Scores are sums of token log-probabilities (no length normalisation).
    """
    tokenizer = model.tokenizer
    end_token = model.tokens.special_tokens.end
    prefix_length = model.decoder_prefix_length
    encoded = tokenizer(list(inputs), padding=True, truncation=True, max_length=max_input_tokens, return_tensors="pt")
    constraint = TrieConstraint(tries, prefix_length, end_token)
    beam_options = {"length_penalty": 0.0, "early_stopping": True} if num_beams > 1 else {"output_logits": True}
    with torch.inference_mode():
        output = model.model.generate(
            input_ids=encoded["input_ids"],
            attention_mask=encoded["attention_mask"],
            num_beams=num_beams,
            num_return_sequences=num_beams,
            max_new_tokens=max_new_tokens,
            prefix_allowed_tokens_fn=constraint,
            do_sample=False,
            min_length=0,  # a model's own generation settings must not block the end of a name
            no_repeat_ngram_size=0,
            repetition_penalty=1.0,
            return_dict_in_generate=True,
            output_scores=num_beams > 1,  # sequence scores of beam search come with them
            **beam_options,
        )
    generated = output.sequences[:, prefix_length:]
    sequences = generated.view(len(inputs), num_beams, -1).tolist()
    if num_beams > 1:
        scores = output.sequences_scores.view(len(inputs), num_beams).tolist()
    else:
        scores = _greedy_log_probabilities(output, output.sequences.shape[1] - len(output.logits), end_token)
    results: list[list[Hypothesis]] = []
    for row, trie in enumerate(tries):
        seen: set[tuple[int, ...]] = set()
        hypotheses = []
        for tokens, score in zip(sequences[row], scores[row], strict=True):
            finished = _finished(tokens, end_token)
            if finished in trie and finished not in seen:
                seen.add(finished)
                hypotheses.append(Hypothesis(finished, float(score)))
        results.append(sorted(hypotheses, key=lambda hypothesis: -hypothesis.score))
    return results
