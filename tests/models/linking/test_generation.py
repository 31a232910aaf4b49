"""Trie-constrained beam search: a finished beam is always a complete sequence of its trie, and
our search returns what transformers' ``generate`` returns (same names, same scores)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from index.trie import TokenTrie
from models.linking.engine import LinkingEngine
from models.linking.generation import Hypothesis, constrained_beam_search
from models.linking.seq2seq import Seq2SeqModel, load_seq2seq_model
from support.reference import TrieConstraint, search_agreement, transformers_beam_search
from tests.conftest import TinyLinker, save_tiny_seq2seq

WORDS = [
    "river",
    "stone",
    "light",
    "north",
    "house",
    "paper",
    "garden",
    "silver",
    "music",
    "ocean",
    "winter",
    "market",
    "bridge",
    "forest",
    "letter",
    "station",
    "engine",
    "window",
    "valley",
    "castle",
    "mirror",
    "planet",
    "harbor",
    "island",
    "theatre",
    "museum",
    "tower",
    "village",
    "desert",
]


def test_reference_constraint_offers_only_the_end_token_off_the_trie(engine: LinkingEngine) -> None:
    model = engine.model
    (marie,) = model.tokens.encode_names(["Marie Curie"])
    (japan,) = model.tokens.encode_names(["Japan"])
    constraint = TrieConstraint([TokenTrie.build([marie])], model)
    ids = model.decoder_ids  # generate speaks the decoder's ids, the trie the tokenizer's

    def offered(*tokens: int) -> list[int]:
        return list(constraint(0, torch.tensor([*model.decoder_prefix, *ids(tokens)])))

    assert offered(marie[0]) == ids(marie[1:2]).tolist()
    assert offered(japan[0]) == ids([model.tokens.special_tokens.end]).tolist()  # fell off the trie
    assert offered(*marie) == ids([model.tokens.special_tokens.end]).tolist()  # complete, no continuation


def test_dead_end_trie_does_not_crash_and_returns_nothing_invalid(engine: LinkingEngine) -> None:
    model: Seq2SeqModel = engine.model
    names = model.tokens.encode_names(["paris", "france"])
    without_end = TokenTrie.build(names)  # sequences that never reach the end token: every beam dead-ends
    with_end = TokenTrie.build([[*names[0], model.tokens.special_tokens.end]])
    found = constrained_beam_search(model, ["paris", "france"], [without_end, with_end], num_beams=2, max_new_tokens=6)
    assert found[0] == []
    assert [list(h.tokens) for h in found[1]] == [[*names[0], model.tokens.special_tokens.end]]
    assert np.isfinite(found[1][0].score)


def _names(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    names: dict[str, None] = {}
    while len(names) < count:
        names[" ".join(rng.choices(WORDS, k=rng.randint(1, 3)))] = None
    return list(names)


def _assert_agree(ours: list[list[Hypothesis]], reference: list[list[Hypothesis]]) -> None:
    """Every name generate returns is ours too, in the same order and with the same score (ours may
    hold more, see ``SearchAgreement``), so our best name scores at least as high as its best."""
    agreement = search_agreement(ours, reference)
    assert agreement.contained == agreement.inputs
    assert agreement.largest_score_difference <= 1e-4
    for mine, theirs in zip(ours, reference, strict=True):
        assert mine and (not theirs or mine[0].score >= theirs[0].score - 1e-4)


@pytest.mark.parametrize(("kind", "inputs"), [("bert2bert", 200), ("t5", 50), ("bart", 50)])
def test_same_names_and_scores_as_transformers_generate(kind: str, inputs: int, tmp_path: Path) -> None:
    """Inputs in batches of 25 over a trie of 400 names: the same top names, scores within 1e-4."""
    model = load_seq2seq_model(str(save_tiny_seq2seq(kind, tmp_path / kind, init_range=0.5)))
    end = model.tokens.special_tokens.end
    trie = TokenTrie.build([*tokens, end] for tokens in model.tokens.encode_names(_names(400, seed=1)))
    longest = 3 * 3 + 1  # words of at most 3 pieces, at most 3 words, then the end token
    texts = [" ".join(words) for words in (random.Random(seed).choices(WORDS, k=5) for seed in range(inputs))]
    for start in range(0, len(texts), 25):
        batch = texts[start : start + 25]
        tries = [trie] * len(batch)
        ours = constrained_beam_search(model, batch, tries, num_beams=5, max_new_tokens=longest + 1)
        reference = transformers_beam_search(model, batch, tries, num_beams=5, max_new_tokens=longest + 1)
        assert all(found for found in ours)
        _assert_agree(ours, reference)


def test_trained_linker_agrees_with_generate_and_scores_are_log_probabilities(engine: LinkingEngine) -> None:
    model = engine.model
    texts = ["Who founded Paris?", "Python is a language", "capital of France", "Marie Curie was born where?"]
    tries = [engine.index.entity_trie] * len(texts)
    ours = constrained_beam_search(model, texts, tries, num_beams=3, max_new_tokens=12)
    _assert_agree(ours, transformers_beam_search(model, texts, tries, num_beams=3, max_new_tokens=12))
    best = ours[0][0]  # its score is the sum of its tokens' log-probabilities, by teacher forcing
    encoded = model.tokenizer(texts[:1], return_tensors="pt")
    decoder_inputs = torch.tensor([[*model.decoder_prefix, *model.decoder_ids(best.tokens[:-1])]])
    with torch.inference_mode():
        logits = model.model(**encoded, decoder_input_ids=decoder_inputs).logits[0]
    written = torch.from_numpy(model.decoder_ids(best.tokens))[:, None]
    log_probs = torch.log_softmax(logits.float(), -1).gather(-1, written)
    assert float(log_probs.sum()) == pytest.approx(best.score, abs=1e-4)


def test_each_input_keeps_to_its_own_trie(engine: LinkingEngine) -> None:
    model = engine.model
    end = model.tokens.special_tokens.end
    names = [["paris", "france"], ["japan"], ["python", "marie curie", "paris"]]
    tries = [TokenTrie.build([*tokens, end] for tokens in model.tokens.encode_names(group)) for group in names]
    found = constrained_beam_search(model, ["paris"] * 3, tries, num_beams=4, max_new_tokens=8)
    for group, trie, hypotheses in zip(names, tries, found, strict=True):
        assert 1 <= len(hypotheses) <= len(group)
        assert all(h.tokens in trie for h in hypotheses)
        assert [h.score for h in hypotheses] == sorted((h.score for h in hypotheses), reverse=True)


def test_the_fused_bert_passes_give_the_models_own_states_and_log_probabilities(tmp_path: Path) -> None:
    from models.linking import fused_bert
    from models.linking.generation import decoder_steps, encoder_states

    model = load_seq2seq_model(str(save_tiny_seq2seq("bert2bert", tmp_path / "b2b", init_range=0.5)))
    assert fused_bert.supports(model.model)
    assert not fused_bert.supports(load_seq2seq_model(str(save_tiny_seq2seq("t5", tmp_path / "t5"))).model)
    texts = ["river stone", "a longer input with padding", "stone"]
    encoded = model.tokenizer(texts, padding=True, return_tensors="pt")
    start = model.model.config.decoder_start_token_id
    steps = [([0, 1, 2], None, [[start]] * 3), ([0, 0, 1, 2], [0, 0, 1, 2], [[2000], [2001], [2002], [2004]])]
    with torch.inference_mode():
        states = encoder_states(model.model, encoded["input_ids"], encoded["attention_mask"])
        own_states = model.model.get_encoder()(**encoded).last_hidden_state
        fused = decoder_steps(model.model, states, encoded["attention_mask"])
        for items, parents, tokens in steps:
            log_probs = fused.step(items, parents, torch.tensor(tokens))
        # the middle input's beams have finished: the first and the last decode on without it
        last_log_probs = fused.step([0, 2], [1, 3], torch.tensor([[2003], [2005]]))
        # the same sequences through the model's own forward pass, without any cache
        full = model.model(
            input_ids=encoded["input_ids"][[0, 0, 1, 2]],
            attention_mask=encoded["attention_mask"][[0, 0, 1, 2]],
            decoder_input_ids=torch.tensor([[start, 2000], [start, 2001], [start, 2002], [start, 2004]]),
        ).logits[:, -1]
        last = model.model(
            input_ids=encoded["input_ids"][[0, 2]],
            attention_mask=encoded["attention_mask"][[0, 2]],
            decoder_input_ids=torch.tensor([[start, 2001, 2003], [start, 2004, 2005]]),
        ).logits[:, -1]
    real = encoded["attention_mask"].bool()  # padded positions differ and are never attended to
    assert torch.allclose(states[real], own_states[real], atol=1e-5)
    assert torch.allclose(log_probs, torch.log_softmax(full.float(), -1), atol=1e-4)
    assert torch.allclose(last_log_probs, torch.log_softmax(last.float(), -1), atol=1e-4)


def test_the_fused_encoder_gives_each_input_of_a_padded_batch_its_states_alone(tmp_path: Path) -> None:
    """The batch's products skip its padding: each input's states are those it gets encoded alone,
    and padded places hold zeros (the decoder's mask never lets it attend to them)."""
    from models.linking.generation import encoder_states

    model = load_seq2seq_model(str(save_tiny_seq2seq("bert2bert", tmp_path / "b2b", init_range=0.5)))
    texts = ["river", "a much longer input of several words", "stone light north"]
    encoded = model.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        together = encoder_states(model.model, encoded["input_ids"], encoded["attention_mask"])
        for row, text in enumerate(texts):
            alone = model.tokenizer([text], return_tensors="pt")
            own = encoder_states(model.model, alone["input_ids"], alone["attention_mask"])[0]
            assert torch.allclose(together[row, : len(own)], own, atol=1e-5)
            assert not together[row, len(own) :].any()


def test_the_fused_layout_follows_weights_changed_in_place(tmp_path: Path) -> None:
    """A model evaluated between training steps (an optimiser changes its weights in place), or
    whose embeddings were replaced."""
    from models.linking.generation import encoder_states

    model = load_seq2seq_model(str(save_tiny_seq2seq("bert2bert", tmp_path / "b2b", init_range=0.5)))
    encoded = model.tokenizer(["river stone"], return_tensors="pt")
    with torch.inference_mode():
        before = encoder_states(model.model, encoded["input_ids"], encoded["attention_mask"])
    with torch.no_grad():
        model.model.encoder.encoder.layer[0].intermediate.dense.weight.mul_(2.0)
    with torch.inference_mode():
        after = encoder_states(model.model, encoded["input_ids"], encoded["attention_mask"])
        own = model.model.get_encoder()(**encoded).last_hidden_state
    assert not torch.allclose(before, after)
    assert torch.allclose(after, own, atol=1e-5)
    replaced = torch.nn.Embedding.from_pretrained(model.model.get_input_embeddings().weight.detach() * 2.0)
    model.model.encoder.set_input_embeddings(replaced)  # new parameter objects, as a resized vocabulary has
    with torch.inference_mode():
        again = encoder_states(model.model, encoded["input_ids"], encoded["attention_mask"])
        own = model.model.get_encoder()(**encoded).last_hidden_state
    assert not torch.allclose(after, again) and torch.allclose(again, own, atol=1e-5)


def test_the_fused_bert_passes_in_bf16_round_no_worse_than_the_models_own_bf16_modules(tmp_path: Path) -> None:
    """The same arithmetic in bf16 (``SIMLINK_LINK_DTYPE``), on the model's own bf16 weights (packed
    by oneDNN where torch has it): against the fp32 model's log-probabilities, the fused passes err
    no more than the model's own modules in bf16 do (its attention runs in float32)."""
    from models.linking import fused_bert
    from models.linking.generation import decoder_steps, encoder_states

    directory = str(save_tiny_seq2seq("bert2bert", tmp_path / "b2b", init_range=0.5))
    model, exact = load_seq2seq_model(directory, "bf16"), load_seq2seq_model(directory)
    assert model.loaded.dtype == "bf16" and model.model.dtype == torch.bfloat16
    assert fused_bert.FusedBert.of(model.model).vocabulary[0].is_mkldnn == fused_bert._packs_bf16()
    encoded = model.tokenizer(["river stone", "a longer input with padding"], padding=True, return_tensors="pt")
    starts = torch.tensor([[model.model.config.decoder_start_token_id]] * 2)

    def own(network: object) -> torch.Tensor:
        return torch.log_softmax(network(**encoded, decoder_input_ids=starts).logits[:, -1].float(), -1)

    with torch.inference_mode():
        states = encoder_states(model.model, encoded["input_ids"], encoded["attention_mask"])
        log_probs = decoder_steps(model.model, states, encoded["attention_mask"]).step([0, 1], None, starts)
        truth, own_bf16 = own(exact.model), own(model.model)
    assert states.dtype == torch.bfloat16 and log_probs.dtype == torch.float32
    own_error = float((own_bf16 - truth).abs().mean())
    assert float((log_probs - truth).abs().mean()) <= 1.1 * own_error
    assert float((log_probs - own_bf16).abs().mean()) < own_error < float(truth.std())


def test_a_bf16_linker_finds_the_fp32_linkers_names_with_close_scores(
    engine: LinkingEngine, tiny_linker: TinyLinker
) -> None:
    bf16 = load_seq2seq_model(str(tiny_linker.model_dir), "bf16")
    texts = ["Who founded Paris?", "Python is a language", "capital of France", "Marie Curie was born where?"]
    tries = [engine.index.entity_trie] * len(texts)
    exact = constrained_beam_search(engine.model, texts, tries, num_beams=3, max_new_tokens=12)
    rounded = constrained_beam_search(bf16, texts, tries, num_beams=3, max_new_tokens=12)
    for ours, theirs in zip(rounded, exact, strict=True):
        assert ours and all(hypothesis.tokens in engine.index.entity_trie for hypothesis in ours)
        assert ours[0].tokens == theirs[0].tokens
        scores = {hypothesis.tokens: hypothesis.score for hypothesis in theirs}
        assert all(abs(h.score - scores[h.tokens]) < 0.25 for h in ours if h.tokens in scores)


def test_decoder_rows_get_their_own_place_among_their_inputs_rows_in_any_order() -> None:
    from models.linking.fused_bert import _Slots

    slots = _Slots.of([2, 0, 2, 1, 0], inputs=4)
    assert slots.slots.tolist() == [0, 0, 1, 0, 1] and slots.width == 2 and not slots.in_place
    assert _Slots.of([0, 0, 1, 1], inputs=2).in_place
    assert not _Slots.of([0, 0, 1, 1], inputs=3).in_place  # the third has finished
    assert not _Slots.of([0, 1, 0, 1], inputs=2).in_place


def test_a_bf16_linker_runs_where_onednn_computes_no_bf16(tmp_path: Path) -> None:
    """With oneDNN capped below AVX-512 (as on an older CPU, or by ``ONEDNN_MAX_CPU_ISA``), bf16
    weights are not packed and the search runs on ``addmm`` instead of failing."""
    import os
    import subprocess
    import sys

    directory = save_tiny_seq2seq("bert2bert", tmp_path / "b2b")
    script = f"""
import torch
from models.linking import fused_bert
from models.linking.generation import constrained_beam_search
from models.linking.seq2seq import load_seq2seq_model
from index.trie import TokenTrie
model = load_seq2seq_model({str(directory)!r}, "bf16")
end = model.tokens.special_tokens.end
trie = TokenTrie.build([*tokens, end] for tokens in model.tokens.encode_names(["river stone", "light"]))
found = constrained_beam_search(model, ["river"], [trie], num_beams=2, max_new_tokens=6)
print(fused_bert._packs_bf16(), fused_bert.FusedBert.of(model.model).vocabulary[0].is_mkldnn, len(found[0]))
"""
    environment = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-3:] == ["False", "False", "2"]
