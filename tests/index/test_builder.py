"""Index builds: shared names, the KB store, refusal of foreign or corrupt indexes, atomic replacement."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from index.builder import build_index
from index.kb import KbFormatError
from index.linking_index import LinkingIndex
from support.data import REPO
from tests.index.small_kb import FACTS, write_kb
from tests.index.word_tokenizer import WordTokenizer


def test_shared_names_map_to_every_entity(built: tuple[Path, WordTokenizer]) -> None:
    path, tokenizer = built
    index = LinkingIndex.open(path, tokenizer.identity)
    (paris,) = tokenizer.encode_names(["Paris"])
    sequence_id = index.entity_trie.sequence_id([*paris, 1])
    assert index.store.entities_of_sequences([sequence_id]) == {
        sequence_id: [("city:paris", "Paris"), ("person:paris", "Paris")]
    }
    assert index.manifest.counts["entities"] == 4 and index.manifest.counts["distinct_names"] == 3


def test_failed_build_leaves_the_previous_index(built: tuple[Path, WordTokenizer], tmp_path: Path) -> None:
    path, tokenizer = built
    before = (path / "manifest.json").read_text()
    sources = write_kb(tmp_path / "bad", facts=[*FACTS, "no tabs here"])
    with pytest.raises(KbFormatError, match=r"facts\.tsv:5"):
        build_index(sources, path, tokenizer)
    assert (path / "manifest.json").read_text() == before
    assert LinkingIndex.open(path).manifest.counts["facts"] == 4
    assert [p.name for p in tmp_path.iterdir() if "building" in p.name] == []


def test_a_directory_that_is_not_an_index_is_never_replaced(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(ValueError, match="is not an index"):
        build_index(write_kb(tmp_path / "kb"), model_dir, WordTokenizer())
    assert (model_dir / "model.safetensors").read_bytes() == b"weights"


def test_a_build_stopped_between_its_renames_is_recovered(built: tuple[Path, WordTokenizer]) -> None:
    path, tokenizer = built
    os.rename(path, path.with_name(f".{path.name}.previous"))  # as if killed after moving the old index aside
    build_index(write_kb(path.parent / "kb2"), path, tokenizer)
    assert LinkingIndex.open(path).manifest.counts["entities"] == 4
    assert not path.with_name(f".{path.name}.previous").exists()


BUILD_SCRIPT = """
import sys
from pathlib import Path
from index.builder import KbSources, build_index
from tests.index.small_kb import FACTS, write_kb
from tests.index.word_tokenizer import WordTokenizer
build_index(KbSources(Path(sys.argv[1]), Path(sys.argv[2])), Path(sys.argv[3]), WordTokenizer(delay=0.05))
"""


def test_build_killed_midway_leaves_the_previous_index(built: tuple[Path, WordTokenizer], tmp_path: Path) -> None:
    path, _ = built
    before = (path / "manifest.json").read_text()
    many = [{"id": f"e{i}", "name": f"entity number {i}"} for i in range(200_000)]
    sources = write_kb(tmp_path / "big", entities=many)
    command = [sys.executable, "-c", BUILD_SCRIPT, str(sources.entities), str(sources.facts), str(path)]
    process = subprocess.Popen(command, cwd=REPO)
    staging = path.with_name(f".{path.name}.building-{process.pid}")
    deadline = time.monotonic() + 60
    while not (staging / "kb.sqlite").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "the build finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (path / "manifest.json").read_text() == before
    index = LinkingIndex.open(path)
    assert index.manifest.counts["entities"] == 4
