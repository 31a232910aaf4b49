"""A built index opened for serving: manifest, the two tries and the KB store.

Layout of an index directory (written by :func:`index.builder.build_index`)::

    manifest.json      format version, tokenizer identity, counts, source checksums
    entity/            trie of entity names:            name tokens + [end]
    kbqa/              trie of (subject, predicate):    subject tokens + [separator] + predicate tokens + [end]
    kb.sqlite          entity ids, (subject, predicate) pairs and facts behind the trie sequences
    name_vector*.npy   optional: the entity names' sentence vectors (:mod:`index.name_vectors`)
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from index.manifest import IndexLoadError, Manifest, TokenizerIdentity
from index.name_vectors import NameVectors
from index.store import STORE_NAME, KbStore
from index.trie import TokenTrie

ENTITY_TRIE = "entity"
KBQA_TRIE = "kbqa"


@dataclass
class LinkingIndex:
    """Everything ``/link-entity`` reads from disk, memory-mapped or queried on demand."""

    path: Path
    manifest: Manifest
    entity_trie: TokenTrie
    kbqa_trie: TokenTrie
    store: KbStore
    name_vectors: NameVectors | None = None

    @classmethod
    def open(cls, path: Path, tokenizer: TokenizerIdentity | None = None) -> LinkingIndex:
        """Opens the index at ``path``, refusing one built for another tokenizer than ``tokenizer``.

        Raises :class:`IndexLoadError` naming the path for a missing, partial or corrupt index.
        """
        path = Path(path)
        manifest = Manifest.read(path)
        if tokenizer is not None:
            manifest.check_tokenizer(path, tokenizer)
        tries = {}
        for name in (ENTITY_TRIE, KBQA_TRIE):
            try:
                tries[name] = TokenTrie.load(path / name)
            except (OSError, ValueError, RuntimeError) as error:
                raise IndexLoadError(f"corrupt or missing {name} trie in index {path / name}: {error}") from error
        try:
            store = KbStore(path / STORE_NAME)
        except sqlite3.Error as error:
            raise IndexLoadError(f"corrupt or missing store {path / STORE_NAME}: {error}") from error
        record = manifest.name_vectors
        vectors = NameVectors.open(path, record, tries[ENTITY_TRIE]) if record is not None else None
        return cls(path, manifest, tries[ENTITY_TRIE], tries[KBQA_TRIE], store, vectors)

    def close(self) -> None:
        self.store.close()

    def describe(self) -> dict[str, object]:
        """What ``GET /info`` reports about the index."""
        return {"path": str(self.path), "manifest": self.manifest.to_json()}
