"""The seq2seq loader: bert2bert warm-started from the embedded MiniLM, linking tokens, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.linking.seq2seq import (
    LINKING_TOKENS,
    encode_names,
    format_input,
    load_linking_tokenizer,
    load_seq2seq_model,
)
from models.loader import ModelLoadError
from tests.conftest import TinyLinker, save_tiny_seq2seq


def test_embedded_default_is_a_warm_started_bert2bert() -> None:
    model = load_seq2seq_model()
    assert type(model.model).__name__ == "EncoderDecoderModel"
    assert 48e6 < model.loaded.parameter_count < 50e6
    tokenizer = model.tokenizer
    for token in LINKING_TOKENS:
        assert len(tokenizer.tokenize(f"a {token} b")) == 3, f"{token} is not a single special token"
    assert model.model.config.decoder_start_token_id == tokenizer.cls_token_id
    assert model.tokens.special_tokens.end == tokenizer.sep_token_id


def test_tokenizer_alone_has_the_models_identity(tiny_linker: TinyLinker) -> None:
    alone = load_linking_tokenizer(str(tiny_linker.model_dir))
    trained = load_seq2seq_model(str(tiny_linker.model_dir)).tokens
    assert alone.identity == trained.identity
    assert alone.output is not None and trained.output is not None
    assert alone.output.token_ids.tolist() == trained.output.token_ids.tolist()
    assert alone.special_tokens == trained.special_tokens
    embedded = load_linking_tokenizer("embedded").identity
    assert embedded.vocab_sha256 != trained.identity.vocab_sha256, "the written tokens are part of the identity"
    assert (embedded.vocab_size, embedded.output_tokens) == (trained.identity.vocab_size, None)


def test_mention_markers_surround_the_span() -> None:
    assert (
        format_input("I live in Paris now", "entity", (10, 15)) == "[ENTITY] I live in [START_ENT] Paris [END_ENT] now"
    )
    assert format_input("capital of Japan?", "kbqa") == "[KBQA] capital of Japan?"


def test_missing_model_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        load_seq2seq_model(str(tmp_path / "no-model"))
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(ModelLoadError, match=str(tmp_path)):
        load_seq2seq_model(str(tmp_path))


@pytest.mark.parametrize("kind", ["t5", "bart"])
def test_any_seq2seq_directory_links_within_the_trie(kind: str, tmp_path: Path) -> None:
    from index.builder import KbSources, build_index
    from models.linking.engine import LinkingEngine, LinkQuery
    from tests.conftest import write_tiny_kb

    model = load_seq2seq_model(str(save_tiny_seq2seq(kind, tmp_path / kind)))
    assert model.decoder_prefix_length == (2 if kind == "bart" else 1)  # BART forces a BOS after the start
    entities, facts = write_tiny_kb(tmp_path / "kb")
    build_index(KbSources(entities, facts), tmp_path / "index", model.tokens)
    engine = LinkingEngine.open(model, tmp_path / "index")
    entity, kbqa = engine.link([LinkQuery("Paris", top_k=3, num_beams=3), LinkQuery("capital?", "kbqa", top_k=2)])
    names = {json.loads(line)["name"] for line in entities.read_text().splitlines()}
    assert entity and all(match.name in names for match in entity)
    assert kbqa and all(match.answers for match in kbqa)


def test_names_encode_through_the_backend_as_through_the_tokenizer() -> None:
    """The fast path (the Rust backend, called directly) gives the ids the transformers call gives."""
    tokens = load_linking_tokenizer("embedded")
    names = ["Paris", "Marie Curie", "São Tomé [SEP] and [PRED] Príncipe", "東京都", "x" * 200, "A\tB\u00a0C", " "]
    assert tokens._names_backend() is not None
    assert tokens.encode_names(names) == encode_names(tokens.tokenizer, names)
    tokens.tokenizer.add_special_tokens({"additional_special_tokens": ["[NEW]"]}, replace_extra_special_tokens=False)
    assert tokens.encode_names(["a [NEW] b"]) == encode_names(tokens.tokenizer, ["a [NEW] b"])  # copy made again


def test_a_local_encoder_directory_is_warm_started_as_bert2bert(chinese_bert: Path) -> None:
    from transformers import BertModel

    model = load_seq2seq_model(str(chinese_bert))
    network = model.model
    assert type(network).__name__ == "EncoderDecoderModel" and model.name == str(chinese_bert)
    encoder = BertModel.from_pretrained(chinese_bert)
    for half in (network.encoder, network.decoder.bert):  # both halves start from the encoder's weights
        assert torch.equal(half.encoder.layer[1].output.dense.weight, encoder.encoder.layer[1].output.dense.weight)
    assert network.config.decoder.is_decoder and network.config.decoder.add_cross_attention
    tokenizer = model.tokenizer
    assert tokenizer.tokenize("北京") == ["北", "京"]  # the directory's own (Chinese) vocabulary
    assert model.tokens.special_tokens.end == tokenizer.sep_token_id
    assert network.config.decoder_start_token_id == tokenizer.cls_token_id
    for token in LINKING_TOKENS:
        assert len(tokenizer.tokenize(f"北 {token} 京")) == 3
    assert network.encoder.get_input_embeddings().weight.shape[0] == len(tokenizer)


def test_a_seq2seq_directory_is_not_warm_started_again(tmp_path: Path) -> None:
    from models.linking.seq2seq import is_encoder_only
    from models.loader import resolve_model_source

    directory = save_tiny_seq2seq("bert2bert", tmp_path / "bert2bert")
    assert not is_encoder_only(resolve_model_source(str(directory)))
    assert not is_encoder_only(resolve_model_source("embedded"))  # warm-started by its own rule
