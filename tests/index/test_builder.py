"""Index builds: shared names, the KB store, refusal of foreign or corrupt indexes, atomic replacement."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import marisa_trie
import pytest

from index import builder
from index import trie as trie_module
from index.builder import build_index
from index.kb import KbFormatError
from index.linking_index import LinkingIndex
from index.trie import encode_key
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


def _entities(count: int) -> list[dict]:
    """Entities whose names share words and, every seventh, a whole name."""
    words = ["north", "river", "saint", "john", "lake", "new", "port", "hill"]
    return [
        {"id": f"e{i}", "name": " ".join(words[(i * k) % 8] for k in range(1, 2 + i % 4)) if i % 7 else "Port Hill"}
        for i in range(count)
    ]


def test_a_streamed_build_has_the_keys_ids_and_rows_of_a_whole_build(tmp_path: Path, monkeypatch) -> None:
    """Batches of 7 entities and trie chunks of 5 names give what one set of every prefix gives."""
    monkeypatch.setattr(builder, "ENTITY_BATCH", 7)
    monkeypatch.setattr(trie_module, "CHUNK", 5)
    entities = _entities(100)
    build_index(write_kb(tmp_path / "kb", entities=entities), tmp_path / "index", WordTokenizer())
    sequences = [[*ids, 1] for ids in WordTokenizer().encode_names([e["name"] for e in entities])]
    prefixes = {""} | {encode_key(s[:end]) for s in sequences for end in range(1, len(s) + 1)}
    reference = marisa_trie.Trie(prefixes)
    index = LinkingIndex.open(tmp_path / "index")
    assert index.entity_trie.node_count == len(reference)
    assert all(index.entity_trie._keys[key] == reference[key] for key in prefixes)
    db = sqlite3.connect(tmp_path / "index" / "kb.sqlite")
    assert db.execute("SELECT id, name FROM entities ORDER BY rowid").fetchall() == [
        (e["id"], e["name"]) for e in entities
    ]
    expected = [(reference[encode_key(s)], e["id"]) for s, e in zip(sequences, entities, strict=True)]
    assert db.execute("SELECT * FROM entity_names ORDER BY rowid").fetchall() == expected
    assert index.manifest.counts["distinct_names"] == len(set(map(tuple, sequences)))
    assert not (tmp_path / "index" / builder.NAMES_SCRATCH).exists()


@pytest.mark.parametrize(
    ("rows", "line"),
    [
        ({8: {"id": "e1", "name": "again"}}, 8),  # the first use is two batches earlier
        ({5: {"id": "e3", "name": "again"}, 6: "{not json"}, 5),  # the same batch, before a worse row
    ],
)
def test_a_repeated_id_is_named_by_its_line_and_replaces_nothing(
    built: tuple[Path, WordTokenizer], tmp_path: Path, monkeypatch, rows: dict, line: int
) -> None:
    monkeypatch.setattr(builder, "ENTITY_BATCH", 3)
    path, tokenizer = built
    before = (path / "manifest.json").read_text()
    sources = write_kb(tmp_path / "bad", entities=_entities(10))
    lines = sources.entities.read_text().splitlines()
    for number, row in rows.items():
        lines[number - 1] = row if isinstance(row, str) else json.dumps(row)
    sources.entities.write_text("\n".join(lines) + "\n")
    with pytest.raises(KbFormatError, match=rf"entities\.jsonl:{line}: duplicate entity id 'e\d'$"):
        build_index(sources, path, tokenizer)
    assert (path / "manifest.json").read_text() == before


def test_a_lenient_build_skips_and_counts_repeated_ids_and_bad_rows(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(builder, "ENTITY_BATCH", 3)
    sources = write_kb(tmp_path / "kb", entities=_entities(10))
    lines = sources.entities.read_text().splitlines()
    lines[1] = json.dumps({"id": "e0", "name": "again"})  # found after line 3's problem, reported before it
    lines[2] = "[]"
    lines[7] = json.dumps({"id": "e0", "name": "once more"})
    sources.entities.write_text("\n".join(lines) + "\n")
    result = build_index(sources, tmp_path / "index", WordTokenizer(), lenient=True)
    report = result.reports[0]
    assert (report.rows, report.skipped) == (7, 3)
    assert [problem.split(": ")[0].rsplit(":", 1)[1] for problem in report.problems] == ["2", "3", "8"]
    assert result.manifest.counts["entities"] == 7
    assert result.manifest.skipped_rows == {str(sources.entities): 3, str(sources.facts): 0}
