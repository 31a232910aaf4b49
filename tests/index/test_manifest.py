"""The manifest: what an index records, and the checks that refuse an index built for another model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.manifest import FORMAT_VERSION, IndexLoadError, Manifest, SpecialTokens, TokenizerIdentity
from tests.index.word_tokenizer import WordTokenizer


def test_manifest_records_sources_and_tokenizer(built: tuple[Path, WordTokenizer]) -> None:
    path, tokenizer = built
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["tokenizer"]["vocab_sha256"] == tokenizer.identity.vocab_sha256
    assert manifest["counts"]["facts"] == 4 and manifest["counts"]["subject_predicate_pairs"] == 3
    assert len(manifest["sources"]["entities"]["sha256"]) == 64


def test_a_manifest_reads_back_as_written(built: tuple[Path, WordTokenizer]) -> None:
    path, tokenizer = built
    manifest = Manifest.read(path)
    assert manifest.tokenizer == tokenizer.identity and manifest.special_tokens == tokenizer.special_tokens
    manifest.write(path.parent)
    assert Manifest.read(path.parent) == manifest


def test_another_format_version_is_refused_with_the_rebuild_command(built: tuple[Path, WordTokenizer]) -> None:
    path, _ = built
    raw = json.loads((path / "manifest.json").read_text())
    raw["format_version"] = FORMAT_VERSION + 1
    (path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(IndexLoadError, match="simlink build-index") as caught:
        Manifest.read(path)
    assert str(path) in str(caught.value)


def test_other_special_tokens_are_refused_naming_both(built: tuple[Path, WordTokenizer]) -> None:
    path, _ = built
    manifest = Manifest.read(path)
    manifest.check_special_tokens(path, SpecialTokens(end=1, separator=2))
    with pytest.raises(IndexLoadError, match=r"token 1 .* with 2, but the model uses 7 and 2"):
        manifest.check_special_tokens(path, SpecialTokens(end=7, separator=2))


def test_identity_covers_the_vocabulary_and_the_rules() -> None:
    vocab = {"[PAD]": 0, "paris": 1}
    plain = TokenizerIdentity.from_vocab("t", vocab)
    assert plain == TokenizerIdentity.from_vocab("t", dict(reversed(vocab.items())))  # dict order does not matter
    assert plain.vocab_sha256 != TokenizerIdentity.from_vocab("t", {**vocab, "lyon": 2}).vocab_sha256
    assert plain.vocab_sha256 != TokenizerIdentity.from_vocab("t", vocab, rules="lowercase").vocab_sha256
    assert plain.vocab_size == 2 and "t (vocabulary 2 tokens" in str(plain)
