"""Builds a linking index from a knowledge base, atomically, streaming the entities.

Everything is written into a sibling directory first; only a complete build (manifest last)
replaces the target by renames, so a failed or killed build leaves the previous index intact.
This module imports no model code: it takes any :class:`NameTokenizer`.

Entities are read, stored and tokenized a batch at a time, so memory does not grow with the
knowledge base in Python objects: SQLite's primary key finds repeated ids (no set of every id),
and the token sequences go end to end into a flat file that the trie build memory-maps.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import chain
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from index.kb import (
    Entity,
    Fact,
    KbFormatError,
    ReadReport,
    duplicate_id,
    file_sha256,
    numbered_entities,
    read_facts,
)
from index.linking_index import ENTITY_TRIE, KBQA_TRIE
from index.manifest import MANIFEST_NAME, Manifest, SpecialTokens, TokenizerIdentity
from index.name_vectors import SentenceEmbedder, write_name_vectors
from index.progress import Progress, no_progress
from index.store import INDEXES, SCHEMA, STORE_NAME
from index.trie import FlatSequences, TokenTrie

T = TypeVar("T")
ENTITY_BATCH = 50_000
NAMES_SCRATCH = "names.tmp"  # the flat token files, inside the staging directory until the trie is built
_BUILD_PRAGMAS = "PRAGMA cache_size = -262144; PRAGMA temp_store = FILE;"  # 256 MB of page cache while writing


class NameTokenizer(Protocol):
    """What the builder needs of a tokenizer: its identity, its special ids and batch encoding."""

    identity: TokenizerIdentity
    special_tokens: SpecialTokens

    def encode_names(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, without any special tokens."""
        ...


@dataclass(frozen=True)
class BuildResult:
    """A finished build: its manifest, and what lenient reading skipped (empty when strict)."""

    manifest: Manifest
    reports: list[ReadReport]


@dataclass(frozen=True)
class KbSources:
    """The knowledge-base files an index is built from."""

    entities: Path
    facts: Path | None = None


def _batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _encode_all(tokenizer: NameTokenizer, texts: Sequence[str], progress: Progress, what: str) -> list[list[int]]:
    encoded: list[list[int]] = []
    batches = list(_batched(texts, 2048))
    for batch in progress(batches, f"tokenizing {what}", len(batches)):
        encoded.extend(tokenizer.encode_names(batch))
    return encoded


def _batches(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of ``size`` rows. When reading fails, the rows read before the bad one come first, so
    a repeated id on an earlier line is reported before a later line's other problem."""
    batch: list[T] = []
    try:
        for row in rows:
            batch.append(row)
            if len(batch) == size:
                yield batch
                batch = []
    except KbFormatError:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


def _insert_entities(
    db: sqlite3.Connection, path: Path, batch: list[tuple[int, Entity]], report: ReadReport | None
) -> list[Entity]:
    """Stores a batch of entities; the primary key refuses a repeated id, which raises naming its line
    (or, with a ``report``, is skipped and counted). Returns the entities stored, in order."""
    rows = [(entity.id, entity.name, entity.description) for _, entity in batch]
    kept: list[Entity] = []
    start = 0
    while start < len(batch):
        before = db.total_changes
        try:
            db.executemany("INSERT INTO entities VALUES (?, ?, ?)", (rows[i] for i in range(start, len(rows))))
            stored = len(batch) - start
        except sqlite3.IntegrityError:
            stored = db.total_changes - before  # the rows before the refused one are in
            line, entity = batch[start + stored]
            if report is None:
                raise duplicate_id(path, line, entity.id) from None
            report.skip(duplicate_id(path, line, entity.id))
        kept.extend(entity for _, entity in batch[start : start + stored])
        start += stored + 1
    if report is not None:
        report.rows += len(kept)
    return kept


class _NameFiles:
    """Token sequences (each ending with the end token) appended to two flat files: tokens, lengths."""

    def __init__(self, directory: Path, end: int) -> None:
        directory.mkdir()
        self.directory = directory
        self.end = end
        self._tokens = (directory / "tokens.int32").open("wb")
        self._lengths = (directory / "lengths.int32").open("wb")

    def append(self, encoded: list[list[int]]) -> None:
        lengths = np.fromiter(map(len, encoded), dtype=np.int32, count=len(encoded)) + 1
        tokens = np.full(int(lengths.sum()), self.end, dtype=np.int32)
        body = np.fromiter(chain.from_iterable(encoded), dtype=np.int32, count=tokens.size - len(encoded))
        tokens[np.arange(body.size) + np.repeat(np.arange(len(encoded)), lengths - 1)] = body  # skip each end
        tokens.tofile(self._tokens)
        lengths.tofile(self._lengths)

    def close(self) -> None:
        self._tokens.close()
        self._lengths.close()

    def finish(self) -> FlatSequences:
        """Closes the files and maps them back."""
        self.close()
        return FlatSequences(*(_mapped(self.directory / name) for name in ("tokens.int32", "lengths.int32")))


def _mapped(path: Path) -> np.ndarray:
    return np.memmap(path, dtype=np.int32, mode="r") if path.stat().st_size else np.empty(0, dtype=np.int32)


def _stage_entities(
    db: sqlite3.Connection,
    path: Path,
    report: ReadReport | None,
    tokenizer: NameTokenizer,
    names: _NameFiles,
    progress: Progress,
) -> None:
    """Stores the entities and appends their names' token sequences to ``names``, a batch at a time."""
    batches = _batches(numbered_entities(path, report), ENTITY_BATCH)
    for batch in progress(batches, f"indexing entities ({ENTITY_BATCH:,} per step)"):
        kept = _insert_entities(db, path, batch, report)
        names.append(tokenizer.encode_names([entity.name for entity in kept]))


def _entity_name_rows(db: sqlite3.Connection, sequence_ids: np.ndarray) -> Iterator[tuple[int, str]]:
    """``(sequence id, entity id)`` for every stored entity, in the order they were stored."""
    entity_ids = (row[0] for row in db.execute("SELECT id FROM entities ORDER BY rowid"))
    batches = (
        sequence_ids[start : start + ENTITY_BATCH].tolist() for start in range(0, sequence_ids.size, ENTITY_BATCH)
    )
    return zip(chain.from_iterable(batches), entity_ids, strict=True)


def _write_entities(
    db: sqlite3.Connection,
    directory: Path,
    sources: KbSources,
    report: ReadReport | None,
    tokenizer: NameTokenizer,
    progress: Progress,
) -> tuple[TokenTrie, int, int]:
    """Stores the entities, builds their trie and links its sequences to them; returns the trie,
    the number of entities and the longest sequence."""
    names = _NameFiles(directory / NAMES_SCRATCH, tokenizer.special_tokens.end)
    try:
        _stage_entities(db, sources.entities, report, tokenizer, names, progress)
    finally:
        names.close()
    flat = names.finish()
    if not len(flat):
        raise ValueError(f"{sources.entities}: no entities to index")
    trie, sequence_ids = TokenTrie.build_flat(flat, progress)
    db.executemany("INSERT INTO entity_names VALUES (?, ?)", _entity_name_rows(db, sequence_ids))
    (directory / ENTITY_TRIE).mkdir()
    trie.save(directory / ENTITY_TRIE)
    longest = int(flat.lengths.max())
    del flat
    shutil.rmtree(directory / NAMES_SCRATCH)
    return trie, len(sequence_ids), longest


def _write_facts(
    db: sqlite3.Connection, directory: Path, facts: list[Fact], tokenizer: NameTokenizer, progress: Progress
) -> tuple[int, int]:
    db.executemany("INSERT INTO facts VALUES (?, ?, ?)", ((f.subject, f.predicate, f.object) for f in facts))
    pairs = list(dict.fromkeys((f.subject, f.predicate) for f in facts))
    subjects = list(dict.fromkeys(subject for subject, _ in pairs))
    predicates = list(dict.fromkeys(predicate for _, predicate in pairs))
    subject_ids = dict(zip(subjects, _encode_all(tokenizer, subjects, progress, "subjects"), strict=True))
    predicate_ids = dict(zip(predicates, _encode_all(tokenizer, predicates, progress, "predicates"), strict=True))
    special = tokenizer.special_tokens
    sequences = [subject_ids[s] + [special.separator] + predicate_ids[p] + [special.end] for s, p in pairs]
    trie = TokenTrie.build(sequences)
    rows = ((trie.sequence_id(sequence), s, p) for (s, p), sequence in zip(pairs, sequences, strict=True))
    db.executemany("INSERT INTO kbqa_pairs VALUES (?, ?, ?)", rows)
    (directory / KBQA_TRIE).mkdir()
    trie.save(directory / KBQA_TRIE)
    return len(pairs), max(map(len, sequences), default=0)


def _previous(target: Path) -> Path:
    return target.with_name(f".{target.name}.previous")


def _check_target(target: Path) -> None:
    """Refuses to replace anything but an index (or nothing), and recovers from a crash mid-swap."""
    previous = _previous(target)
    if not target.exists() and (previous / MANIFEST_NAME).is_file():
        os.rename(previous, target)  # the last build stopped between its two renames
    if target.exists() and not (target / MANIFEST_NAME).is_file() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(f"{target} exists and is not an index (no {MANIFEST_NAME}); choose another --out")


def _replace_directory(built: Path, target: Path) -> None:
    """Moves ``built`` to ``target``; the old target is kept aside until the new one is in place."""
    previous = _previous(target)
    if previous.exists():
        shutil.rmtree(previous)
    if target.exists():
        os.rename(target, previous)
    os.rename(built, target)
    if previous.exists():
        shutil.rmtree(previous)


def build_index(
    sources: KbSources,
    target: Path,
    tokenizer: NameTokenizer,
    lenient: bool = False,
    progress: Progress = no_progress,
    name_vectors: SentenceEmbedder | None = None,
) -> BuildResult:
    """Builds the index of ``sources`` at ``target`` (replacing any index there only on success).

    With ``lenient`` bad KB rows are skipped and counted in the manifest; otherwise the first bad
    row raises :class:`index.kb.KbFormatError` naming file and line, and nothing is replaced. With
    ``name_vectors``, every distinct entity name's vector from that encoder is stored too (dense
    candidates, :mod:`index.name_vectors`).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _check_target(target)
    staging = target.with_name(f".{target.name}.building-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        result = _build_into(staging, sources, tokenizer, lenient, progress, name_vectors)
        _replace_directory(staging, target)
        return result
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _build_into(
    directory: Path,
    sources: KbSources,
    tokenizer: NameTokenizer,
    lenient: bool,
    progress: Progress,
    embedder: SentenceEmbedder | None,
) -> BuildResult:
    entity_report = ReadReport(sources.entities) if lenient else None
    fact_report = ReadReport(sources.facts) if lenient and sources.facts else None
    db = sqlite3.connect(directory / STORE_NAME)
    try:
        db.executescript(_BUILD_PRAGMAS + SCHEMA)
        entity_trie, entity_count, longest_name = _write_entities(
            db, directory, sources, entity_report, tokenizer, progress
        )
        facts = list(read_facts(sources.facts, fact_report)) if sources.facts else []
        pair_count, longest_pair = _write_facts(db, directory, facts, tokenizer, progress)
        db.executescript(INDEXES)
        db.commit()
        vectors = write_name_vectors(db, directory, len(entity_trie), embedder, progress) if embedder else None
    finally:
        db.close()
    manifest = Manifest(
        tokenizer=tokenizer.identity,
        special_tokens=tokenizer.special_tokens,
        counts={
            "entities": entity_count,
            "distinct_names": len(entity_trie),
            "facts": len(facts),
            "subject_predicate_pairs": pair_count,
            "longest_entity_sequence": longest_name,
            "longest_kbqa_sequence": longest_pair,
        },
        sources={
            role: {"path": str(path.resolve()), "sha256": file_sha256(path)}
            for role, path in (("entities", sources.entities), ("facts", sources.facts))
            if path is not None
        },
        skipped_rows={
            str(report.path): report.skipped for report in (entity_report, fact_report) if report is not None
        },
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        name_vectors=vectors,
    )
    manifest.write(directory)
    return BuildResult(manifest, [report for report in (entity_report, fact_report) if report is not None])
