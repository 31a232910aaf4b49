"""Index builds: shared names, the KB store, refusal of foreign or corrupt indexes, atomic replacement."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from index.builder import KbSources, build_index
from index.kb import KbFormatError
from index.linking_index import LinkingIndex
from index.manifest import IndexLoadError, TokenizerIdentity
from support.data import REPO
from tests.index.word_tokenizer import WordTokenizer

ENTITIES = [
    {"id": "city:paris", "name": "Paris", "aliases": ["City of Light"], "description": "Capital of France."},
    {"id": "person:paris", "name": "Paris", "description": "A prince of Troy."},
    {"id": "country:france", "name": "France"},
    {"id": "person:marie_curie", "name": "Marie Curie"},
]
FACTS = [
    "France\tcapital\tParis",
    "France\tofficial language\tFrench",
    "Marie Curie ||| born in ||| Warsaw",
    "France\tofficial language\tBreton",
]


def write_kb(directory: Path, entities: list[dict] = ENTITIES, facts: list[str] = FACTS) -> KbSources:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "entities.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entities))
    (directory / "facts.tsv").write_text("".join(f + "\n" for f in facts))
    return KbSources(directory / "entities.jsonl", directory / "facts.tsv")


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, WordTokenizer]:
    tokenizer = WordTokenizer()
    build_index(write_kb(tmp_path / "kb"), tmp_path / "index", tokenizer)
    return tmp_path / "index", tokenizer


def test_shared_names_map_to_every_entity(built: tuple[Path, WordTokenizer]) -> None:
    path, tokenizer = built
    index = LinkingIndex.open(path, tokenizer.identity)
    (paris,) = tokenizer.encode_names(["Paris"])
    sequence_id = index.entity_trie.sequence_id([*paris, 1])
    assert index.store.entities_of_sequences([sequence_id]) == {
        sequence_id: [("city:paris", "Paris"), ("person:paris", "Paris")]
    }
    assert index.manifest.counts["entities"] == 4 and index.manifest.counts["distinct_names"] == 3


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


def test_manifest_records_sources_and_tokenizer(built: tuple[Path, WordTokenizer]) -> None:
    path, tokenizer = built
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["tokenizer"]["vocab_sha256"] == tokenizer.identity.vocab_sha256
    assert manifest["counts"]["facts"] == 4 and manifest["counts"]["subject_predicate_pairs"] == 3
    assert len(manifest["sources"]["entities"]["sha256"]) == 64


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
