"""The KB store behind the tries: per-request queries, shared names, facts in file order, threads."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from index.linking_index import LinkingIndex
from index.store import STORE_NAME, KbStore
from tests.index.word_tokenizer import WordTokenizer


@pytest.fixture
def store(built: tuple[Path, WordTokenizer]) -> KbStore:
    path, _ = built
    return KbStore(path / STORE_NAME)


def test_entity_ids_and_sequences_map_both_ways(built: tuple[Path, WordTokenizer], store: KbStore) -> None:
    path, tokenizer = built
    trie = LinkingIndex.open(path).entity_trie
    sequence = {
        name: trie.sequence_id([*ids, 1])
        for name, ids in zip(["Paris", "France"], tokenizer.encode_names(["Paris", "France"]), strict=True)
    }
    found = store.sequences_of_entities(["person:paris", "city:paris", "country:france", "city:atlantis"])
    assert found == {
        "person:paris": sequence["Paris"],
        "city:paris": sequence["Paris"],
        "country:france": sequence["France"],
    }
    by_sequence = store.entities_of_sequences([sequence["Paris"], sequence["France"]])
    assert by_sequence[sequence["Paris"]] == [("city:paris", "Paris"), ("person:paris", "Paris")]  # by id
    assert by_sequence[sequence["France"]] == [("country:france", "France")]


def test_many_ids_are_queried_in_chunks_under_sqlites_parameter_cap(store: KbStore) -> None:
    ids = [f"unknown:{n}" for n in range(1200)] + ["country:france"]
    assert list(store.sequences_of_entities(ids)) == ["country:france"]


def test_objects_come_in_file_order_and_unknown_pairs_have_none(store: KbStore) -> None:
    assert store.objects("France", "official language") == ["French", "Breton"]
    assert store.objects("France", "anthem") == []


def test_each_thread_gets_its_own_connection_and_close_reopens(store: KbStore) -> None:
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(store.objects("France", "capital"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [["Paris"]] * 3
    store.close()
    assert store.objects("France", "capital") == ["Paris"]


def test_a_database_without_the_tables_is_refused(tmp_path: Path) -> None:
    path = tmp_path / STORE_NAME
    sqlite3.connect(path).close()
    with pytest.raises(sqlite3.DatabaseError, match="missing tables"):
        KbStore(path)
