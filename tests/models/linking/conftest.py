"""The linking wing's shared fixture: the engine over the session's tiny trained linker."""

from __future__ import annotations

import pytest

from models.linking.engine import LinkingEngine
from models.linking.seq2seq import load_seq2seq_model
from tests.conftest import TinyLinker


@pytest.fixture(scope="session")
def engine(tiny_linker: TinyLinker) -> LinkingEngine:
    return LinkingEngine.open(load_seq2seq_model(str(tiny_linker.model_dir)), tiny_linker.index_dir)
