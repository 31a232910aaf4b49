"""Vocabulary extension: characters the tokenizer cannot spell become tokens, the model grows to match,
and every way a name is encoded (tokenizer call, the index builder's Rust path, training targets, a
reloaded tokenizer) gives the same new ids."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer

from index.builder import KbSources, build_index
from index.linking_index import LinkingIndex
from index.manifest import IndexLoadError
from models.linking.engine import LinkingEngine
from models.linking.seq2seq import encode_names, load_linking_tokenizer, load_seq2seq_model
from models.linking.trainer import _Batches
from models.linking.training_data import Example, examples_from_files
from models.linking.vocabulary import (
    example_texts,
    extend_vocabulary,
    grow_embeddings,
    vocabulary_coverage,
)
from support.data import REPO
from tests.conftest import save_tiny_seq2seq, write_chinese_kb

NAME = "刘晓华（广东工业大学教授）"


def _chinese_texts(tmp_path: Path) -> list[str]:
    entities, facts = write_chinese_kb(tmp_path / "kb")
    return example_texts(examples_from_files(entities, facts, None))


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory):
    """The embedded bert2bert, extended to the tiny Chinese KB; with its embeddings from before."""
    model = load_seq2seq_model()
    before = {name: matrix.detach().clone() for name, matrix in _matrices(model.model).items()}
    size = len(model.tokenizer)
    texts = [*_chinese_texts(tmp_path_factory.mktemp("vocab")), "ＡⅡ型"]  # full-width A, the numeral II
    report = extend_vocabulary(model, texts)
    return model, report, before, size


def _matrices(network) -> dict[str, torch.Tensor]:
    return {
        "encoder": network.encoder.get_input_embeddings().weight,
        "decoder": network.decoder.get_input_embeddings().weight,
        "output": network.decoder.get_output_embeddings().weight,
        "bias": network.decoder.get_output_embeddings().bias,
    }


def test_missing_characters_become_tokens_and_none_is_unk_after(extended) -> None:
    model, report, _, size = extended
    assert report.added > 0 and len(model.tokenizer) == size + report.added
    assert report.unknown_before > 0 and report.share_after == 0.0
    ids = model.tokens.encode_names([NAME])[0]
    assert model.tokenizer.unk_token_id not in ids
    assert any(token >= size for token in ids)  # spelled with new tokens
    assert "vocabulary: added" not in str(report) and f"added {report.added} token(s)" in str(report)


def test_every_matrix_grows_old_rows_stay_and_new_rows_are_distinct_draws(extended) -> None:
    model, report, before, size = extended
    for name, matrix in _matrices(model.model).items():
        assert matrix.shape[0] == len(model.tokenizer), name
        assert torch.equal(matrix[:size], before[name]), name
    new = model.model.encoder.get_input_embeddings().weight[size:]
    assert torch.unique(new, dim=0).shape[0] == report.added  # no two new characters alike
    old = before["encoder"]
    assert torch.allclose(new.mean(0), old.mean(0), atol=4 * old.std().item() / report.added**0.5 + 1e-3)
    assert 0.5 < new.norm(dim=1).mean() / old.norm(dim=1).mean() < 1.5  # typical rows, not zeros
    bias = model.model.decoder.get_output_embeddings().bias
    assert torch.allclose(bias[size:], before["bias"].mean().expand(report.added))


def test_a_name_of_new_characters_encodes_alike_on_every_path(extended, tmp_path: Path) -> None:
    model, _, _, _ = extended
    names = [NAME, "龙晶（游戏）", "ａⅱ型 (x)", "ＡⅡ型"]  # added lower-cased, as the normalizer sees them
    expected = encode_names(model.tokenizer, names)
    assert model.tokens._names_backend() is not None  # the index builder's Rust fast path
    assert model.tokens.encode_names(names) == expected
    example = Example("[KBQA] 刘晓华?", "kbqa", NAME, "职业")
    special = model.tokens.special_tokens
    assert _Batches(model, 64).targets([example]) == [
        [*expected[0], special.separator, *encode_names(model.tokenizer, ["职业"])[0], special.end]
    ]
    model.tokenizer.save_pretrained(tmp_path / "tokenizer")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "tokenizer")
    assert encode_names(reloaded, names) == expected
    assert all(model.tokenizer.unk_token_id not in ids for ids in expected)
    assert expected[3] == expected[2][:3]


def test_generated_names_come_back_from_the_store_not_from_decoding(extended, tmp_path: Path) -> None:
    """Decoding puts spaces between CJK characters; the KB's own string comes back through the index."""
    model, _, _, _ = extended
    entities, facts = write_chinese_kb(tmp_path / "kb")
    build_index(KbSources(entities, facts), tmp_path / "index", model.tokens)
    index = LinkingIndex.open(tmp_path / "index", model.tokens.identity)
    ids = model.tokens.encode_names([NAME])[0]
    decoded = model.tokenizer.decode(ids)
    assert decoded != NAME and decoded.replace(" ", "") == NAME
    sequence = (*ids, model.tokens.special_tokens.end)
    found = index.store.entities_of_sequences([index.entity_trie.sequence_id(sequence)])
    assert [name for ids_and_names in found.values() for _, name in ids_and_names] == [NAME]
    pair = (
        *ids,
        model.tokens.special_tokens.separator,
        *model.tokens.encode_names(["职业"])[0],
        model.tokens.special_tokens.end,
    )
    assert index.store.pairs_of_sequence(index.kbqa_trie.sequence_id(pair)) == [(NAME, "职业")]
    index.close()


def test_an_index_built_with_the_unextended_tokenizer_is_refused(extended, tmp_path: Path) -> None:
    model, _, _, _ = extended
    entities, facts = write_chinese_kb(tmp_path / "kb")
    build_index(KbSources(entities, facts), tmp_path / "index", load_linking_tokenizer("embedded"))
    with pytest.raises(IndexLoadError, match="rebuild the index with this model's tokenizer"):
        LinkingEngine.open(model, tmp_path / "index")


def test_an_untied_output_layer_grows_with_drawn_rows(tmp_path: Path) -> None:
    model = load_seq2seq_model(str(save_tiny_seq2seq("bert2bert", tmp_path / "untied", tied_output=False)))
    network = model.model
    output, decoder = network.decoder.get_output_embeddings().weight, network.decoder.get_input_embeddings().weight
    assert output.data_ptr() != decoder.data_ptr()
    size = len(model.tokenizer)
    report = extend_vocabulary(model, ["北京是中国的首都", "刘晓华（演员）"])
    assert network.decoder.get_output_embeddings().weight.shape[0] == len(model.tokenizer) == size + report.added
    new = network.decoder.get_output_embeddings().weight[size:]
    assert torch.unique(new, dim=0).shape[0] == report.added and new.norm(dim=1).min() > 0


def test_rows_of_a_padded_vocabulary_are_drawn_in_place() -> None:
    """A model with more rows than its tokenizer has tokens keeps its size; the new ids' rows are drawn."""
    from transformers import BertConfig, BertModel

    network = BertModel(BertConfig(vocab_size=12, hidden_size=8, num_hidden_layers=1, num_attention_heads=1))
    old = network.get_input_embeddings().weight.detach().clone()
    grow_embeddings(network, first_new=10, size=11, seed=1)
    weight = network.get_input_embeddings().weight
    assert weight.shape[0] == 12 and torch.equal(weight[:10], old[:10]) and torch.equal(weight[11], old[11])
    assert not torch.equal(weight[10], old[10])


def test_coverage_without_extension_counts_the_unknown_share() -> None:
    tokenizer = load_linking_tokenizer("embedded").tokenizer
    report = vocabulary_coverage(tokenizer, ["你中", "Paris"])
    assert report is not None and report.added == 0 and report.characters == 7
    assert report.unknown_before == report.unknown_after == 1  # 你 is not in MiniLM's vocabulary, 中 is


def test_a_tokenizer_that_cannot_tell_what_it_misses_is_left_alone() -> None:
    slow = SimpleNamespace(is_fast=False, unk_token_id=100)
    model = SimpleNamespace(tokenizer=slow, name="slow", model=None)
    assert extend_vocabulary(model, ["你好"]) is None and vocabulary_coverage(slow, ["你好"]) is None


def test_the_demo_kb_with_its_kgclue_sample_is_fully_spelled() -> None:
    demo = REPO / "examples" / "demo_kb"
    examples = examples_from_files(demo / "entities.jsonl", demo / "kgclue_sample.txt", None)
    model = load_seq2seq_model()
    report = extend_vocabulary(model, example_texts(examples))
    assert report.share_after == 0.0
    facts = [line.split("|||") for line in (demo / "kgclue_sample.txt").read_text().splitlines()]
    encoded = model.tokens.encode_names(
        [part.strip() for subject, predicate, _ in facts for part in (subject, predicate)]
    )
    assert all(ids and model.tokenizer.unk_token_id not in ids for ids in encoded)
