"""Reference computations that ours are checked and timed against."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linprog

from models.linking.generation import Hypothesis, NextTokenSource, encode_inputs
from models.linking.seq2seq import Seq2SeqModel


def linprog_transport(a: np.ndarray, b: np.ndarray, cost: np.ndarray) -> float:
    """Exact transport as a plain linear program (HiGHS): min <T, C> s.t. T 1 = a, T^T 1 = b, T >= 0."""
    n, m = cost.shape
    rows = np.kron(np.eye(n), np.ones((1, m)))  # sum over j of T_ij
    cols = np.kron(np.ones((1, n)), np.eye(m))  # sum over i of T_ij
    result = linprog(
        cost.ravel(), A_eq=np.vstack([rows, cols]), b_eq=np.concatenate([a, b]), bounds=(0, None), method="highs"
    )
    if not result.success:
        raise ArithmeticError(f"linprog did not solve the transport problem: {result.message}")
    return float(result.fun)


@dataclass
class TrieConstraint:
    """``generate``'s ``prefix_allowed_tokens_fn`` for a batch whose row ``i`` is constrained by
    ``tries[i]`` (in tokenizer ids; ``generate`` speaks the decoder's own): a prefix with no
    continuation is offered only the end token (recent transformers raise on an empty allowed list)."""

    tries: Sequence[NextTokenSource]
    model: Seq2SeqModel

    def __post_init__(self) -> None:
        self.prefix_length = self.model.decoder_prefix_length
        self.end_token = self.model.tokens.special_tokens.end

    def __call__(self, batch_id: int, input_ids: torch.Tensor) -> Sequence[int]:
        prefix = self.model.tokenizer_ids(input_ids[self.prefix_length :].numpy())
        allowed = self.tries[batch_id].next_tokens(prefix.tolist())
        if len(allowed) == 0:
            allowed = [self.end_token]
        return torch.from_numpy(self.model.decoder_ids(allowed))


def _finished(tokens: list[int], end_token: int) -> tuple[int, ...]:
    """The tokens up to and including the first end token (beams are padded after it)."""
    if end_token in tokens:
        return tuple(tokens[: tokens.index(end_token) + 1])
    return tuple(tokens)


def transformers_beam_search(
    model: Seq2SeqModel,
    inputs: Sequence[str],
    tries: Sequence[NextTokenSource],
    num_beams: int,
    max_new_tokens: int,
    max_input_tokens: int = 256,
) -> list[list[Hypothesis]]:
    """Trie-constrained beam search through transformers' ``generate`` and ``prefix_allowed_tokens_fn``:
    what ``models.linking.generation.constrained_beam_search`` must agree with (same names, same
    scores), and the speed it is compared with. Beam search only (``num_beams`` ≥ 2)."""
    end_token = model.tokens.special_tokens.end
    prefix_length = model.decoder_prefix_length
    encoded = encode_inputs(model, inputs, max_input_tokens)
    with torch.inference_mode():
        output = model.model.generate(
            input_ids=encoded["input_ids"],
            attention_mask=encoded["attention_mask"],
            num_beams=num_beams,
            num_return_sequences=num_beams,
            max_new_tokens=max_new_tokens,
            prefix_allowed_tokens_fn=TrieConstraint(tries, model),
            do_sample=False,
            min_length=0,
            no_repeat_ngram_size=0,
            repetition_penalty=1.0,
            length_penalty=0.0,
            early_stopping=True,
            return_dict_in_generate=True,
            output_scores=True,
        )
    decoded = model.tokenizer_ids(output.sequences[:, prefix_length:].numpy())
    sequences = decoded.reshape(len(inputs), num_beams, -1).tolist()
    scores = output.sequences_scores.view(len(inputs), num_beams).tolist()
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


PLACEHOLDER_SCORE = -1e8  # generate's placeholder beams carry -1e9 on top of a log-probability


@dataclass(frozen=True)
class SearchAgreement:
    """How our search's answers compare with ``generate``'s on the same inputs.

    ``generate`` keeps ``num_beams`` rows per input from the first step: placeholder rows scored
    -1e9 fill them, and a candidate that ends a name outside the top ``num_beams`` may run on as a
    row penalised by -1e9. Such rows can end in its finished set, as a duplicate of a name (then
    dropped, so it returns fewer names) or as a name with a score near -1e9 (``placeholders``:
    not a log-probability, left out of the comparison). Then:

    - ``identical``: inputs with the same names in the same order;
    - ``contained``: inputs where every (non-placeholder) name of ``generate`` is also ours, in the
      same order (ours may hold more);
    - ``largest_score_difference``: over the names both return.
    """

    inputs: int
    identical: int
    contained: int
    placeholders: int
    largest_score_difference: float


def search_agreement(ours: list[list[Hypothesis]], reference: list[list[Hypothesis]]) -> SearchAgreement:
    identical = contained = placeholders = 0
    largest = 0.0
    for mine, everything in zip(ours, reference, strict=True):
        theirs = [hypothesis for hypothesis in everything if hypothesis.score > PLACEHOLDER_SCORE]
        placeholders += len(everything) - len(theirs)
        scores = {hypothesis.tokens: hypothesis.score for hypothesis in mine}
        wanted = {hypothesis.tokens for hypothesis in theirs}
        identical += [h.tokens for h in mine] == [h.tokens for h in theirs]
        contained += [h.tokens for h in mine if h.tokens in wanted] == [h.tokens for h in theirs]
        largest = max([largest, *(abs(scores[t.tokens] - t.score) for t in theirs if t.tokens in scores)])
    return SearchAgreement(len(ours), identical, contained, placeholders, largest)
