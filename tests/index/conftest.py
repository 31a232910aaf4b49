"""The index tests' fixture: the small knowledge base built with a whitespace tokenizer (no model needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.builder import build_index
from tests.index.small_kb import write_kb
from tests.index.word_tokenizer import WordTokenizer


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, WordTokenizer]:
    tokenizer = WordTokenizer()
    build_index(write_kb(tmp_path / "kb"), tmp_path / "index", tokenizer)
    return tmp_path / "index", tokenizer
