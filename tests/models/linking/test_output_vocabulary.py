"""A decoder restricted to a knowledge base's tokens: the same model on the tokens it keeps, saved and
loaded as it is, searched as ``generate`` searches it, and never given an index it cannot write."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from index.builder import KbSources, build_index
from index.manifest import IndexLoadError
from index.trie import TokenTrie
from models.linking.engine import LinkingEngine
from models.linking.generation import constrained_beam_search
from models.linking.seq2seq import (
    OutputVocabulary,
    Seq2SeqModel,
    UnwritableNamesError,
    encode_names,
    load_linking_tokenizer,
    load_seq2seq_model,
    restrict_output_vocabulary,
)
from models.linking.vocabulary import extend_vocabulary
from support.reference import search_agreement, transformers_beam_search
from tests.conftest import TinyLinker, save_tiny_seq2seq

WORDS = ["river", "stone", "light", "north", "house", "paper", "garden", "silver", "music", "ocean", "winter"]


def _names(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    names: dict[str, None] = {}
    while len(names) < count:
        names[" ".join(rng.choices(WORDS, k=rng.randint(1, 3)))] = None
    return list(names)


@pytest.fixture()
def tiny(tmp_path: Path) -> Seq2SeqModel:
    return load_seq2seq_model(str(save_tiny_seq2seq("bert2bert", tmp_path / "b2b", init_range=0.5)))


def _logits(model: Seq2SeqModel, text: str, tokens: list[int]) -> torch.Tensor:
    """The decoder's logits after its start token and ``tokens`` (tokenizer ids)."""
    encoded = model.tokenizer([text], return_tensors="pt")
    decoder_inputs = torch.tensor([[*model.decoder_prefix, *model.decoder_ids(tokens)]])
    with torch.inference_mode():
        return model.model(**encoded, decoder_input_ids=decoder_inputs).logits[0]


def test_the_kept_rows_score_as_before_and_the_model_saves_and_loads_as_it_is(
    tiny: Seq2SeqModel, tmp_path: Path
) -> None:
    names = tiny.tokens.encode_names(["river stone", "silver light"])
    before = _logits(tiny, "a silver river", names[0])
    written = restrict_output_vocabulary(tiny, [token for name in names for token in name])
    special = tiny.tokens.special_tokens
    assert set(written.token_ids.tolist()) == {*names[0], *names[1], special.end, special.separator, 0, 101}
    after = _logits(tiny, "a silver river", names[0])
    assert after.shape[-1] == len(written)
    torch.testing.assert_close(after, before[:, torch.from_numpy(written.token_ids)], atol=1e-5, rtol=0)
    decoder = tiny.model.decoder
    assert decoder.get_output_embeddings().weight is decoder.get_input_embeddings().weight, "still tied"

    tiny.model.save_pretrained(tmp_path / "saved")
    tiny.tokenizer.save_pretrained(tmp_path / "saved")
    loaded = load_seq2seq_model(str(tmp_path / "saved"))
    assert loaded.output is not None and loaded.output.token_ids.tolist() == written.token_ids.tolist()
    assert loaded.tokens.special_tokens == special, "the end token is still the tokenizer's [SEP]"
    torch.testing.assert_close(_logits(loaded, "a silver river", names[0]), after, atol=1e-5, rtol=0)
    generated = loaded.model.generate(**loaded.tokenizer(["river"], return_tensors="pt"), max_new_tokens=3)
    assert int(generated.max()) < len(written), "generate speaks the decoder's own rows"


def test_a_restricted_decoder_grows_new_rows_and_keeps_the_old_ones(tiny: Seq2SeqModel) -> None:
    (river,), (ocean,) = tiny.tokens.encode_names(["river"]), tiny.tokens.encode_names(["ocean"])
    first = restrict_output_vocabulary(tiny, river)
    rows = tiny.model.decoder.get_input_embeddings().weight.detach().clone()
    with torch.no_grad():
        tiny.model.decoder.cls.predictions.bias[first.rows(river)] = 3.0  # as if trained
    grown = restrict_output_vocabulary(tiny, [*first.token_ids, *ocean])
    weight = tiny.model.decoder.get_input_embeddings().weight.detach()
    torch.testing.assert_close(weight[grown.rows(first.token_ids)], rows)
    encoder_rows = tiny.model.encoder.get_input_embeddings().weight.detach()
    torch.testing.assert_close(weight[grown.rows(ocean)], encoder_rows[ocean])
    bias = tiny.model.decoder.cls.predictions.bias.detach()
    assert float(bias[grown.rows(river)].min()) == 3.0
    assert float(bias[grown.rows(ocean)][0]) < 3.0, "a new row starts from the mean bias"


def test_the_written_ids_map_both_ways_and_refuse_others() -> None:
    vocabulary = OutputVocabulary(np.array([0, 5, 101, 102, 2000]))
    assert vocabulary.rows([102, 5, 2000]).tolist() == [3, 1, 4]
    assert vocabulary.writes([5, 6, 99999, -1]).tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match=r"\[6\]"):
        vocabulary.rows([5, 6])


def test_our_search_returns_what_generate_returns_on_a_restricted_decoder(tiny: Seq2SeqModel) -> None:
    names = _names(60, seed=2)
    encoded = tiny.tokens.encode_names(names)
    restrict_output_vocabulary(tiny, [token for name in encoded for token in name])
    end = tiny.tokens.special_tokens.end
    trie = TokenTrie.build([*tokens, end] for tokens in tiny.tokens.encode_names(names))
    texts = [" ".join(random.Random(seed).choices(WORDS, k=4)) for seed in range(40)]
    ours = constrained_beam_search(tiny, texts, [trie] * len(texts), num_beams=4, max_new_tokens=12)
    reference = transformers_beam_search(tiny, texts, [trie] * len(texts), num_beams=4, max_new_tokens=12)
    agreement = search_agreement(ours, reference)
    assert all(ours) and all(h.tokens in trie for found in ours for h in found)
    assert agreement.contained == agreement.inputs
    assert agreement.largest_score_difference <= 1e-4


def test_an_index_of_names_the_decoder_cannot_write_is_refused_and_nothing_is_left(
    tiny_linker: TinyLinker, tmp_path: Path
) -> None:
    entities = tmp_path / "entities.jsonl"
    entities.write_text(tiny_linker.entities.read_text() + '{"id": "x", "name": "Zanzibar Quokka"}\n')
    tokens = load_linking_tokenizer(str(tiny_linker.model_dir))
    with pytest.raises(UnwritableNamesError, match=r"'Zanzibar Quokka'.*--output-vocabulary full"):
        build_index(KbSources(entities), tmp_path / "index", tokens)
    assert not (tmp_path / "index").exists()


def test_an_index_built_for_another_output_vocabulary_is_refused(tiny_linker: TinyLinker, tmp_path: Path) -> None:
    full = load_linking_tokenizer("embedded")
    build_index(KbSources(tiny_linker.entities), tmp_path / "index", full)
    with pytest.raises(IndexLoadError, match="of which its decoder writes"):
        LinkingEngine.open(load_seq2seq_model(str(tiny_linker.model_dir)), tmp_path / "index")


def test_the_trained_decoder_writes_its_kbs_tokens(tiny_linker: TinyLinker) -> None:
    model = load_seq2seq_model(str(tiny_linker.model_dir))
    assert model.output is not None
    kb = ["Paris", "France", "Japan", "Marie Curie", "Python", "capital", "currency", "born in", "known for"]
    needed = {token for name in encode_names(model.tokenizer, kb) for token in name}
    assert needed <= set(model.output.token_ids.tolist())
    assert len(model.output) < 100 < len(model.tokenizer)


def test_new_characters_grow_the_encoder_not_a_restricted_decoder(tiny: Seq2SeqModel) -> None:
    (river,) = tiny.tokens.encode_names(["river"])
    written = restrict_output_vocabulary(tiny, river)
    decoder_rows = tiny.model.decoder.get_input_embeddings().weight.detach().clone()
    report = extend_vocabulary(tiny, ["ꙮ river"])
    assert report is not None and report.added == 1
    assert tiny.model.encoder.get_input_embeddings().weight.shape[0] == len(tiny.tokenizer)
    torch.testing.assert_close(tiny.model.decoder.get_input_embeddings().weight, decoder_rows)
    assert len(tiny.output or []) == len(written)
