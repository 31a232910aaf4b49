"""Beam search constrained by a token trie, written for tries: one decoder pass per step for every
live beam of a batch, and only the tokens the trie allows are ever scored.

It is the beam search of transformers' ``generate`` (``num_beams``, no length penalty,
``early_stopping=True``) with ``prefix_allowed_tokens_fn``, minus its machinery:

- the encoder runs once per input; the decoder keeps a key/value cache, reordered as beams
  are chosen, so a step feeds one token per beam;
- at each step each beam's allowed tokens come from the trie in one lookup, and all candidates
  of the batch are scored with one gather (no mask over the vocabulary, no per-beam callback);
- a batch item stops as soon as it holds ``num_beams`` finished names, and its beams leave the
  decoder's batch; a step only ever runs real beams (``generate`` keeps ``num_beams`` rows per
  item from the first step, some of them placeholders).

Names and tries are in the tokenizer's ids; the decoder's inputs and log-probabilities are in its
own (``Seq2SeqModel.decoder_ids``: the same, or the rows of a restricted output vocabulary).

Scores are sums of the model's (unconstrained) token log-probabilities, as ``generate``'s
are: a finished name's score is its log-probability under the model. At each step an item
keeps the best ``2 × num_beams`` candidates; those that end a name and rank in the first
``num_beams`` join the finished set (the best ``num_beams`` are kept), the best ``num_beams``
others continue. ``support.reference.transformers_beam_search`` is the ``generate`` path this
is checked against: every name it returns is returned here with the same score, in the same
order. It sometimes returns fewer: its placeholder beams (scored -1e9) can continue past an end
token and take places in its finished set as duplicates, which are then dropped; here only real
beams run, so such places hold the next real names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from models.linking import fused_bert
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
class _Item:
    """The search state of one input: its trie, its finished names (best first, at most
    ``num_beams``), and whether it is done."""

    trie: NextTokenSource
    finished: list[Hypothesis] = field(default_factory=list)
    done: bool = False

    def add_finished(self, found: list[Hypothesis], num_beams: int) -> None:
        self.finished = sorted([*self.finished, *found], key=lambda hypothesis: -hypothesis.score)[:num_beams]
        self.done = len(self.finished) >= num_beams


@dataclass
class _Beams:
    """The live beams of a batch, one decoder row each, grouped by item in item order."""

    items: list[int]
    tokens: list[list[int]]
    scores: torch.Tensor

    def __len__(self) -> int:
        return len(self.items)


class DecoderSteps(Protocol):
    """A decoder stepped one token per beam: ``items[r]`` is the input row ``r`` decodes,
    ``parents[r]`` the previous step's row it continues (None at the first step); returns the
    next-token log-probabilities ``[rows, vocabulary]``. An input none of whose rows a step decodes
    is done and never comes back."""

    def step(self, items: list[int], parents: list[int] | None, inputs: torch.Tensor) -> torch.Tensor: ...


@dataclass
class _TransformersDecoder:
    """Any seq2seq model's decoder through its own forward pass, over its key/value cache."""

    network: Any
    encoder_states: torch.Tensor
    encoder_mask: torch.Tensor
    cache: Any = None

    def step(self, items: list[int], parents: list[int] | None, inputs: torch.Tensor) -> torch.Tensor:
        from transformers.modeling_outputs import BaseModelOutput

        if parents is not None:
            self.cache.reorder_cache(torch.tensor(parents, dtype=torch.long))
        rows = torch.tensor(items, dtype=torch.long)
        output = self.network(
            encoder_outputs=BaseModelOutput(last_hidden_state=self.encoder_states.index_select(0, rows)),
            attention_mask=self.encoder_mask.index_select(0, rows),
            decoder_input_ids=inputs,
            cache=self.cache,
            use_cache=True,
            return_dict=True,
        )
        self.cache = output.cache
        return torch.log_softmax(output.logits[:, -1, :].float(), dim=-1)


def encoder_states(network: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The encoder's last hidden states: the fused bert2bert pass (:mod:`models.linking.fused_bert`)
    where the model is one, else the model's own encoder."""
    if fused_bert.supports(network):
        return fused_bert.FusedBert.of(network).encode(input_ids, attention_mask)
    encoder = network.get_encoder()
    return encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=True).last_hidden_state


def decoder_steps(network: Any, encoder_states: torch.Tensor, encoder_mask: torch.Tensor) -> DecoderSteps:
    """The fused bert2bert decoder (:mod:`models.linking.fused_bert`) where the model is one,
    else the model's own forward pass."""
    if fused_bert.supports(network):
        return fused_bert.BertDecoderSteps(network, encoder_states, encoder_mask)
    return _TransformersDecoder(network, encoder_states, encoder_mask)


def _allowed(beams: _Beams, items: list[_Item], end_token: int) -> list[np.ndarray]:
    """Each beam's next tokens from its item's trie; a prefix with no continuation (a trie whose
    sequences lack the end token) is offered the end token only, and the name is dropped at the end."""
    allowed = []
    for item, tokens in zip(beams.items, beams.tokens, strict=True):
        found = items[item].trie.next_tokens(tokens)
        allowed.append(found if len(found) else np.array([end_token]))
    return allowed


def _split_best(
    candidates: list[tuple[int, int, float]], beams: _Beams, num_beams: int, end_token: int, last_step: bool
) -> tuple[list[Hypothesis], list[tuple[int, int, float]]]:
    """An item's best ``(row, token, score)`` candidates, best first, split as ``generate`` splits
    them: those that end a name (every one, at the last step) and rank in the first ``num_beams``
    are finished names; the first ``num_beams`` of the others continue."""
    finished, continuing = [], []
    for rank, (row, token, score) in enumerate(candidates):
        if token == end_token or last_step:
            if rank < num_beams:
                finished.append(Hypothesis((*beams.tokens[row], token), score))
        elif len(continuing) < num_beams:
            continuing.append((row, token, score))
    return finished, continuing


def _choose(
    beams: _Beams,
    log_probs: torch.Tensor,
    items: list[_Item],
    num_beams: int,
    end_token: int,
    last_step: bool,
    decoder_ids: Callable[[np.ndarray], np.ndarray],
) -> tuple[_Beams, list[int]]:
    """One step's selection: every allowed continuation of every beam is scored by one gather
    (at the decoder's ids of the trie's tokens, ``decoder_ids``);
    per item the best ``2 × num_beams`` are split into finished names and the next beams.
    Returns the next beams and, for each, the row it continues."""
    allowed = _allowed(beams, items, end_token)
    counts = np.fromiter((len(tokens) for tokens in allowed), dtype=np.int64, count=len(allowed))
    rows = np.repeat(np.arange(len(beams)), counts)
    tokens = np.concatenate(allowed).astype(np.int64)
    row_index, token_index = torch.from_numpy(rows), torch.from_numpy(decoder_ids(tokens))
    scores = beams.scores[row_index] + log_probs[row_index, token_index]
    ends = np.cumsum(counts)
    row_ends = np.cumsum(np.bincount(beams.items, minlength=len(items)))
    next_items, next_tokens, next_scores, parents = [], [], [], []
    row_start = 0
    for item_id, row_end in enumerate(row_ends):
        if row_end == row_start:
            continue
        low = int(ends[row_start - 1]) if row_start else 0
        high = int(ends[row_end - 1])
        row_start = int(row_end)
        top_scores, top = torch.topk(scores[low:high], k=min(2 * num_beams, high - low))
        positions = (top + low).tolist()
        candidates = [(int(rows[p]), int(tokens[p]), s) for p, s in zip(positions, top_scores.tolist(), strict=True)]
        finished, continuing = _split_best(candidates, beams, num_beams, end_token, last_step)
        item = items[item_id]
        item.add_finished(finished, num_beams)
        if item.done or not continuing:
            item.done = True
            continue
        for row, token, score in continuing:
            next_items.append(item_id)
            next_tokens.append([*beams.tokens[row], token])
            next_scores.append(score)
            parents.append(row)
    return _Beams(next_items, next_tokens, torch.tensor(next_scores, dtype=torch.float32)), parents


def encode_inputs(model: Seq2SeqModel, inputs: Sequence[str], max_input_tokens: int) -> Any:
    """The batch's encoder inputs: padded to the longest, cut at ``max_input_tokens``."""
    return model.tokenizer(
        list(inputs), padding=True, truncation=True, max_length=max_input_tokens, return_tensors="pt"
    )


def constrained_beam_search(
    model: Seq2SeqModel,
    inputs: Sequence[str],
    tries: Sequence[NextTokenSource],
    num_beams: int,
    max_new_tokens: int,
    max_input_tokens: int = 256,
) -> list[list[Hypothesis]]:
    """Up to ``num_beams`` hypotheses per input, best first, each a complete sequence of its trie.

    One encoder pass serves the batch and each step one decoder pass serves every live beam;
    ``inputs[i]`` is constrained by ``tries[i]``. ``max_new_tokens`` counts the decoded tokens
    after the start token (a forced BOS included), as ``generate`` counts them.
    """
    end_token = model.tokens.special_tokens.end
    prefix = model.decoder_prefix
    encoded = encode_inputs(model, inputs, max_input_tokens)
    items = [_Item(trie) for trie in tries]
    steps = max_new_tokens - (len(prefix) - 1)
    with torch.inference_mode():
        states = encoder_states(model.model, encoded["input_ids"], encoded["attention_mask"])
        decoder = decoder_steps(model.model, states, encoded["attention_mask"])
        beams = _Beams(list(range(len(items))), [[] for _ in items], torch.zeros(len(items)))
        step_inputs = torch.tensor([prefix] * len(items), dtype=torch.long)
        parents: list[int] | None = None
        for step in range(steps):
            if not len(beams):
                break
            log_probs = decoder.step(beams.items, parents, step_inputs)
            last_step = step == steps - 1
            beams, parents = _choose(beams, log_probs, items, num_beams, end_token, last_step, model.decoder_ids)
            last_tokens = [tokens[-1] for tokens in beams.tokens]
            step_inputs = torch.from_numpy(model.decoder_ids(last_tokens)).view(-1, 1)
    return [[hypothesis for hypothesis in item.finished if hypothesis.tokens in item.trie] for item in items]
