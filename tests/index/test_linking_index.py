"""Opening a built index for serving: the tries and the store behind them, and refusing a wrong one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from index.linking_index import LinkingIndex
from index.manifest import IndexLoadError, TokenizerIdentity
from tests.index.word_tokenizer import WordTokenizer


def test_kbqa_trie_allows_only_predicates_the_subject_has(built: tuple[Path, WordTokenizer]) -> None:
    path, tokenizer = built
    index = LinkingIndex.open(path)
    france, marie, born, capital = tokenizer.encode_names(["France", "Marie Curie", "born in", "capital"])
    after_france = set(index.kbqa_trie.next_tokens([*france, 2]).tolist())
    assert capital[0] in after_france and born[0] not in after_france
    sequence = [*france, 2, *tokenizer.encode_names(["official language"])[0], 1]
    (pair,) = index.store.pairs_of_sequence(index.kbqa_trie.sequence_id(sequence))
    assert pair == ("France", "official language")
    assert index.store.objects(*pair) == ["French", "Breton"]
    assert index.kbqa_trie.sequence_id([*marie, 2, *capital, 1]) is None


def test_index_of_another_tokenizer_is_refused_naming_both(built: tuple[Path, WordTokenizer]) -> None:
    path, _ = built
    other = TokenizerIdentity("t5-small", "f" * 64, 32100)
    with pytest.raises(IndexLoadError) as caught:
        LinkingIndex.open(path, other)
    message = str(caught.value)
    assert str(path) in message and "words" in message and "t5-small" in message


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda p: (p / "manifest.json").write_text("{truncated"), "manifest.json"),
        (lambda p: (p / "manifest.json").unlink(), "manifest.json"),
        (lambda p: (p / "entity" / "children.npy").write_bytes(b"garbage"), "entity"),
        (lambda p: (p / "kbqa" / "keys.marisa").unlink(), "kbqa"),
        (lambda p: (p / "kb.sqlite").write_bytes(b"not a database" * 100), "kb.sqlite"),
    ],
)
def test_corrupt_index_is_refused_naming_the_path(built: tuple[Path, WordTokenizer], damage, named: str) -> None:
    path, _ = built
    damage(path)
    with pytest.raises(IndexLoadError, match=named) as caught:
        LinkingIndex.open(path)
    assert str(path) in str(caught.value)


def test_missing_index_is_refused_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(IndexLoadError, match=re.escape(str(tmp_path / "nowhere"))):
        LinkingIndex.open(tmp_path / "nowhere")


def test_describe_names_the_path_and_carries_the_manifest(built: tuple[Path, WordTokenizer]) -> None:
    path, tokenizer = built
    index = LinkingIndex.open(path, tokenizer.identity)
    described = index.describe()
    assert described["path"] == str(path)
    assert described["manifest"]["counts"]["entities"] == 4
    index.close()
