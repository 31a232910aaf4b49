"""Reading bulk inputs: every format, line numbers, and bad rows named rather than raised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.rows import PAIRS, TEXTS, link_texts, read_rows, read_texts
from models.linking.limits import LinkLimits

LIMITS = LinkLimits(max_chars=40, max_beams=8, max_candidates=2)


def _values(rows):
    return [(row.line, json.loads(row.values) if row.values else None, row.problem) for row in rows]


def test_tsv_pairs_keep_physical_line_numbers_and_name_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_text("a one\tb one\n\nonly one field\n \tb\nx\ty\n", encoding="utf-8")
    assert _values(read_rows(path, PAIRS)) == [
        (1, {"a": "a one", "b": "b one"}, ""),
        (3, None, "expected 2 tab-separated fields (a, b), got 1"),
        (4, None, '"a" is empty'),
        (5, {"a": "x", "b": "y"}, ""),
    ]


def test_jsonl_rows_and_their_problems(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    lines = ['{"a": "x", "b": "y"}', "{not json", "[1, 2]", '{"a": "x", "b": 3}', '{"a": "x"}']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = _values(read_rows(path, PAIRS))
    assert rows[0] == (1, {"a": "x", "b": "y"}, "")
    assert rows[1][2].startswith("invalid JSON")
    assert rows[2][2] == "expected a JSON object"
    assert rows[3][2] == '"b" must be a string, got int'
    assert rows[4][2] == '"b" must be a string, got nothing'


def test_rows_after_a_line_are_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "texts.txt"
    path.write_text("one\ttab kept\ntwo\nthree\n", encoding="utf-8")
    assert [row.line for row in read_rows(path, TEXTS, after_line=1)] == [2, 3]
    assert read_texts(path) == ([1, 2, 3], ["one\ttab kept", "two", "three"])


def test_a_line_that_is_not_utf8_is_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "texts.txt"
    path.write_bytes(b"fine\n\xff\xfe bad\n")
    rows = _values(read_rows(path, TEXTS))
    assert rows[1][0] == 2 and rows[1][2].startswith("not UTF-8")


def test_parquet_rows_are_numbered_from_one(tmp_path: Path) -> None:
    arrow = pytest.importorskip("pyarrow", reason="Parquet needs the 'ray' extra (pyarrow)")
    import pyarrow.parquet as parquet

    path = tmp_path / "pairs.parquet"
    parquet.write_table(arrow.table({"a": ["x", "z"], "b": ["y", None]}), path)
    assert _values(read_rows(path, PAIRS)) == [
        (1, {"a": "x", "b": "y"}, ""),
        (2, None, '"b" must be a string, got NoneType'),
    ]


def test_link_rows_take_the_request_fields_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "texts.jsonl"
    rows = [
        {"text": "Who founded Amazon?"},
        {"text": "Paris is big", "mention": {"start": 0, "end": 5}, "top_k": 7},
        {"text": "capital of Japan?", "task": "kbqa", "top_k": 2, "num_beams": 3},
        {"text": "x", "task": "other"},
        {"text": "abc", "mention": {"start": 2, "end": 9}},
        {"text": "abc", "top_k": 6, "num_beams": 3},
        {"text": "abc", "colour": "red"},
        {"text": "capital of Japan", "task": "kbqa", "mention": {"start": 0, "end": 3}},
        {"text": "a   b", "mention": {"start": 1, "end": 3}},
        {"text": "[START_ENT] Paris [END_ENT]", "mention": {"start": 12, "end": 17}},
        {"text": "Paris and Japan", "several": True},
        {"text": "Paris", "several": "yes"},
        {"text": "capital of Japan", "task": "kbqa", "several": True},
        {"text": "Paris", "candidates": ["city:paris", "person:paris"]},
        {"text": "capital of Japan", "task": "kbqa", "candidates": "auto"},
        {"text": "capital of Japan", "task": "kbqa", "candidates": ["country:japan"]},
        {"text": "Paris", "candidates": []},
        {"text": "Paris", "candidates": ["city:paris", 7]},
        {"text": "Paris", "candidates": "AUTO"},
        {"text": "Paris", "candidates": None},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    read = _values(read_rows(path, link_texts(LIMITS)))
    assert read[0][1] == {"text": "Who founded Amazon?", "task": "entity", "top_k": 5, "num_beams": 5, "several": False}
    assert read[1][1] == {
        "text": "Paris is big",
        "task": "entity",
        "top_k": 7,
        "num_beams": 7,
        "mention": [0, 5],
        "several": False,
    }
    assert read[2][1]["num_beams"] == 3
    assert "task" in read[3][2]
    assert "mention" in read[4][2]
    assert read[5][2].startswith('"top_k" is 6, more than num_beams (3)')
    assert read[6][2].startswith("unknown field(s) 'colour'")
    assert read[7][2] == "\"mention\" applies to task 'entity' only"
    assert read[8][2] == '"mention" covers only white space'
    assert "not both" in read[9][2]
    assert read[10][1]["several"] is True
    assert read[11][2] == "\"several\" must be true or false, got 'yes'"
    assert read[12][2] == "\"several\" applies to task 'entity' only"
    assert read[13][1]["candidates"] == ["city:paris", "person:paris"]
    assert read[14][1]["candidates"] == "auto"
    assert read[15][2].startswith("\"candidates\" must be 'auto' for task 'kbqa'")
    assert read[16][2].startswith('"candidates" must be "auto" or a non-empty list')
    assert read[17][2] == '"candidates" must hold entity ids (non-empty strings)'
    assert read[18][2].startswith('"candidates" must be "auto" or a non-empty list')
    assert "candidates" not in read[19][1]


def test_link_rows_are_refused_as_the_server_refuses_requests_over_its_limits(tmp_path: Path) -> None:
    path = tmp_path / "texts.jsonl"
    rows = [
        {"text": "x" * 40, "num_beams": 8, "candidates": ["a", "b"]},
        {"text": "x" * 41},
        {"text": "Paris", "num_beams": 9},
        {"text": "Paris", "candidates": ["a", "b", "c"]},
        {"text": "Paris", "top_k": 9},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    read = _values(read_rows(path, link_texts(LIMITS)))
    assert read[0][2] == ""
    assert read[1][2] == '"text" has 41 characters, more than the limit of 40'
    assert read[2][2] == '"num_beams" is 9, more than the limit of 8'
    assert read[3][2] == '"candidates" has 3 ids, more than the limit of 2'
    assert read[4][2] == '"num_beams" is 9, more than the limit of 8'  # defaults to top_k, then meets the limit


def test_unknown_format_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text("a,b\n")
    with pytest.raises(ValueError, match=r"pairs\.csv: unknown input format '\.csv'"):
        list(read_rows(path, PAIRS))


def test_a_corpus_with_a_bad_row_is_refused_by_line(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"text": "fine"}\n{"text": ""}\n')
    with pytest.raises(ValueError, match=r"corpus\.jsonl:2: \"text\" is empty"):
        read_texts(path)
