"""The knowledge-base store beside the tries: SQLite, queried per request, never read whole.

Tables (written by :mod:`index.builder`, opened read-only here):

- ``entities(id, name, description)``
- ``entity_names(sequence_id, entity_id)``: entity-trie sequence -> entities (names may be shared)
- ``kbqa_pairs(sequence_id, subject, predicate)``: KBQA-trie sequence -> (subject, predicate)
- ``facts(subject, predicate, object)``: the answers of a (subject, predicate)
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

SCHEMA = """
CREATE TABLE entities (id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL);
CREATE TABLE entity_names (sequence_id INTEGER NOT NULL, entity_id TEXT NOT NULL);
CREATE TABLE kbqa_pairs (sequence_id INTEGER NOT NULL, subject TEXT NOT NULL, predicate TEXT NOT NULL);
CREATE TABLE facts (subject TEXT NOT NULL, predicate TEXT NOT NULL, object TEXT NOT NULL);
"""
INDEXES = """
CREATE INDEX entity_names_by_sequence ON entity_names (sequence_id);
CREATE INDEX entity_names_by_entity ON entity_names (entity_id);
CREATE INDEX kbqa_pairs_by_sequence ON kbqa_pairs (sequence_id);
CREATE INDEX kbqa_pairs_by_subject ON kbqa_pairs (subject);
CREATE INDEX facts_by_pair ON facts (subject, predicate);
"""
STORE_NAME = "kb.sqlite"
_EXPECTED_TABLES = {"entities", "entity_names", "kbqa_pairs", "facts"}


def _placeholders(count: int) -> str:
    return ",".join("?" * count)


class KbStore:
    """Read-only queries against an index's SQLite store; each thread gets its own connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if missing := _EXPECTED_TABLES - tables:
            raise sqlite3.DatabaseError(f"missing tables {sorted(missing)}")

    @property
    def _db(self) -> sqlite3.Connection:
        """This thread's read-only connection (opened on first use)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            if not self.path.is_file():
                raise sqlite3.OperationalError(f"no such file: {self.path}")
            connection = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        """Closes every thread's connection; a later query opens a fresh one."""
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
            self._local = threading.local()

    def entities_of_sequences(self, sequence_ids: Sequence[int]) -> dict[int, list[tuple[str, str]]]:
        """``sequence_id -> [(entity id, entity name), ...]`` for entity-trie sequences."""
        rows = self._db.execute(
            "SELECT n.sequence_id, e.id, e.name FROM entity_names n JOIN entities e ON e.id = n.entity_id "
            f"WHERE n.sequence_id IN ({_placeholders(len(sequence_ids))}) ORDER BY e.id",
            list(sequence_ids),
        )
        found: dict[int, list[tuple[str, str]]] = {}
        for sequence_id, entity_id, name in rows:
            found.setdefault(sequence_id, []).append((entity_id, name))
        return found

    def sequences_of_entities(self, entity_ids: Iterable[str]) -> dict[str, int]:
        """``entity id -> entity-trie sequence id``; ids not in the store are absent."""
        ids = list(dict.fromkeys(entity_ids))
        found: dict[str, int] = {}
        for start in range(0, len(ids), 500):  # SQLite caps bound parameters per statement
            chunk = ids[start : start + 500]
            rows = self._db.execute(
                f"SELECT entity_id, sequence_id FROM entity_names WHERE entity_id IN ({_placeholders(len(chunk))})",
                chunk,
            )
            found.update(rows)
        return found

    def pairs_of_sequence(self, sequence_id: int) -> list[tuple[str, str]]:
        """The (subject, predicate) pairs a KBQA-trie sequence stands for (several if they tokenize alike)."""
        rows = self._db.execute(
            "SELECT subject, predicate FROM kbqa_pairs WHERE sequence_id = ? ORDER BY subject, predicate",
            (sequence_id,),
        )
        return list(rows)

    def descriptions(self, entity_ids: Sequence[str]) -> dict[str, str]:
        """``entity id -> description`` (empty where the KB gave none); ids not in the store are absent."""
        rows = self._db.execute(
            f"SELECT id, description FROM entities WHERE id IN ({_placeholders(len(entity_ids))})", list(entity_ids)
        )
        return dict(rows)

    def pair_sequences_of_subjects(self, subjects: Iterable[str]) -> list[int]:
        """KBQA-trie sequence ids of every (subject, predicate) pair of these subjects."""
        names = list(dict.fromkeys(subjects))
        found: list[int] = []
        for start in range(0, len(names), 500):  # SQLite caps bound parameters per statement
            chunk = names[start : start + 500]
            rows = self._db.execute(
                f"SELECT sequence_id FROM kbqa_pairs WHERE subject IN ({_placeholders(len(chunk))})", chunk
            )
            found.extend(row[0] for row in rows)
        return list(dict.fromkeys(found))

    def entity_names(self) -> Iterator[tuple[str, str]]:
        """Every ``(entity id, name)``, streamed."""
        yield from self._db.execute("SELECT id, name FROM entities")

    def kbqa_subjects(self) -> Iterator[str]:
        """Every distinct KBQA subject, streamed."""
        yield from (row[0] for row in self._db.execute("SELECT DISTINCT subject FROM kbqa_pairs"))

    def objects(self, subject: str, predicate: str) -> list[str]:
        """Every object of ``subject predicate ?`` in file order."""
        rows = self._db.execute(
            "SELECT object FROM facts WHERE subject = ? AND predicate = ? ORDER BY rowid", (subject, predicate)
        )
        return [row[0] for row in rows]
