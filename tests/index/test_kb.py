"""Knowledge-base readers: every bad row is an error naming file and line, or skipped and counted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from index.kb import Fact, KbFormatError, ReadReport, read_entities, read_facts


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_entities_are_read_with_aliases(tmp_path: Path) -> None:
    path = write(
        tmp_path / "e.jsonl",
        [
            json.dumps({"id": "city:paris", "name": "Paris", "aliases": ["City of Light", " "], "description": "x"}),
            "",
            json.dumps({"id": "country:france", "name": " France "}),
        ],
    )
    entities = list(read_entities(path))
    assert [(e.id, e.name, e.aliases) for e in entities] == [
        ("city:paris", "Paris", ("City of Light",)),
        ("country:france", "France", ()),
    ]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("{not json", "invalid JSON"),
        ('["a list"]', "JSON object"),
        ('{"id": "x"}', '"name"'),
        ('{"id": "x", "name": "X", "aliases": "Y"}', '"aliases"'),
        ('{"id": "a", "name": "A"}', "duplicate entity id"),
    ],
)
def test_bad_entity_rows_name_file_and_line(tmp_path: Path, row: str, problem: str) -> None:
    path = write(tmp_path / "e.jsonl", ['{"id": "a", "name": "A"}', row])
    with pytest.raises(KbFormatError) as caught:
        list(read_entities(path))
    assert str(caught.value).startswith(f"{path}:2: ") and problem in str(caught.value)


def test_lenient_read_skips_and_counts(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", ['{"id": "a", "name": "A"}', "{bad", '{"id": "b", "name": "B"}', "[]"])
    report = ReadReport(path)
    assert [e.id for e in read_entities(path, report)] == ["a", "b"]
    assert (report.rows, report.skipped) == (2, 2)
    assert report.problems[0].startswith(f"{path}:2:")


def test_facts_in_tsv_and_kgclue_form(tmp_path: Path) -> None:
    path = write(tmp_path / "f.txt", ["France\tcapital\tParis", "Marie Curie ||| born in ||| Warsaw"])
    assert list(read_facts(path)) == [Fact("France", "capital", "Paris"), Fact("Marie Curie", "born in", "Warsaw")]


@pytest.mark.parametrize("row", ["only two\tfields", "a\tb\tc\td", "a ||| ||| c", "x\t\ty"])
def test_bad_fact_rows_name_file_and_line(tmp_path: Path, row: str) -> None:
    path = write(tmp_path / "f.tsv", ["France\tcapital\tParis", row])
    with pytest.raises(KbFormatError, match=f"^{re.escape(str(path))}:2: expected"):
        list(read_facts(path))
    report = ReadReport(path)
    assert len(list(read_facts(path, report))) == 1 and report.skipped == 1


def test_a_line_that_is_not_utf8_is_named_and_skippable(tmp_path: Path) -> None:
    path = tmp_path / "f.tsv"
    path.write_bytes(b"\xef\xbb\xbfJapan\tcurrency\tYen\ncaf\xe9\tis\ta\nFrance\tcapital\tParis\n")
    with pytest.raises(KbFormatError, match=f"^{re.escape(str(path))}:2: not UTF-8"):
        list(read_facts(path))
    report = ReadReport(path)
    facts = list(read_facts(path, report))
    assert facts[0].subject == "Japan"  # the byte-order mark is not part of the first subject
    assert [f.subject for f in facts] == ["Japan", "France"] and report.skipped == 1


def test_the_demo_kb_reads_cleanly_in_both_fact_forms() -> None:
    demo = Path(__file__).resolve().parents[2] / "examples" / "demo_kb"
    entities = list(read_entities(demo / "entities.jsonl"))
    facts = set(read_facts(demo / "triples.tsv"))
    kgclue = list(read_facts(demo / "kgclue_sample.txt"))
    assert len(entities) == 337 and len(facts) == 1178
    assert kgclue and set(kgclue) <= facts
    names = {entity.name for entity in entities}
    assert {fact.subject for fact in facts} <= names | {alias for e in entities for alias in e.aliases}
