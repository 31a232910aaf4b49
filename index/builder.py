"""Builds a linking index from a knowledge base, atomically.

Everything is written into a sibling directory first; only a complete build (manifest last)
replaces the target by renames, so a failed or killed build leaves the previous index intact.
This module imports no model code: it takes any :class:`NameTokenizer`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol, TypeVar

from index.kb import Entity, Fact, ReadReport, file_sha256, read_entities, read_facts
from index.linking_index import ENTITY_TRIE, KBQA_TRIE
from index.manifest import MANIFEST_NAME, Manifest, SpecialTokens, TokenizerIdentity
from index.progress import Progress, no_progress
from index.store import INDEXES, SCHEMA, STORE_NAME
from index.trie import TokenTrie

T = TypeVar("T")


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


def _write_entities(
    db: sqlite3.Connection, directory: Path, entities: list[Entity], tokenizer: NameTokenizer, progress: Progress
) -> tuple[TokenTrie, int]:
    end = tokenizer.special_tokens.end
    db.executemany("INSERT INTO entities VALUES (?, ?, ?)", ((e.id, e.name, e.description) for e in entities))
    sequences = [[*tokens, end] for tokens in _encode_all(tokenizer, [e.name for e in entities], progress, "names")]
    trie = TokenTrie.build(sequences)
    rows = ((trie.sequence_id(sequence), entity.id) for entity, sequence in zip(entities, sequences, strict=True))
    db.executemany("INSERT INTO entity_names VALUES (?, ?)", rows)
    (directory / ENTITY_TRIE).mkdir()
    trie.save(directory / ENTITY_TRIE)
    return trie, max(map(len, sequences))


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
) -> BuildResult:
    """Builds the index of ``sources`` at ``target`` (replacing any index there only on success).

    With ``lenient`` bad KB rows are skipped and counted in the manifest; otherwise the first bad
    row raises :class:`index.kb.KbFormatError` naming file and line, and nothing is replaced.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _check_target(target)
    staging = target.with_name(f".{target.name}.building-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        result = _build_into(staging, sources, tokenizer, lenient, progress)
        _replace_directory(staging, target)
        return result
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _build_into(
    directory: Path, sources: KbSources, tokenizer: NameTokenizer, lenient: bool, progress: Progress
) -> BuildResult:
    entity_report = ReadReport(sources.entities) if lenient else None
    entities = list(read_entities(sources.entities, entity_report))
    if not entities:
        raise ValueError(f"{sources.entities}: no entities to index")
    fact_report = ReadReport(sources.facts) if lenient and sources.facts else None
    facts = list(read_facts(sources.facts, fact_report)) if sources.facts else []
    db = sqlite3.connect(directory / STORE_NAME)
    try:
        db.executescript(SCHEMA)
        entity_trie, longest_name = _write_entities(db, directory, entities, tokenizer, progress)
        pair_count, longest_pair = _write_facts(db, directory, facts, tokenizer, progress)
        db.executescript(INDEXES)
        db.commit()
    finally:
        db.close()
    manifest = Manifest(
        tokenizer=tokenizer.identity,
        special_tokens=tokenizer.special_tokens,
        counts={
            "entities": len(entities),
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
    )
    manifest.write(directory)
    return BuildResult(manifest, [report for report in (entity_report, fact_report) if report is not None])
