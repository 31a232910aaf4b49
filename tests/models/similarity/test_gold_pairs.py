"""Scored pairs are read from STS-B, SICK, JSONL and TSV files, and bad lines are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.similarity.gold_pairs import GoldPair, GoldPairFormatError, read_gold_pairs


def test_every_format_gives_the_same_pairs(tmp_path: Path) -> None:
    expected = [GoldPair("A cat sits.", "A cat is sitting.", 4.5), GoldPair("A dog runs.", "Stocks fell.", 0.2)]
    stsb = tmp_path / "pairs.csv"
    stsb.write_text("".join(f"genre\tfile\tyear\t{i}\t{p.gold}\t{p.a}\t{p.b}\n" for i, p in enumerate(expected)))
    sick = tmp_path / "SICK.txt"
    sick.write_text(
        "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n"
        + "".join(f"{i}\t{p.a}\t{p.b}\t{p.gold}\tNEUTRAL\n" for i, p in enumerate(expected))
    )
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(f'{{"a": "{p.a}", "b": "{p.b}", "score": {p.gold}}}\n' for p in expected) + "\n")
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{p.a}\t{p.b}\t{p.gold}\n" for p in expected))
    for path in (stsb, sick, jsonl, tsv):
        assert read_gold_pairs(path) == expected, path


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("pairs.tsv", "a\tb\t1\nonly two\tfields\n", ":2: expected 3 tab-separated fields"),
        ("pairs.tsv", "a\tb\thigh\n", ":1: field 'score' is 'high', not a number"),
        ("pairs.tsv", "a\tb\tnan\n", ":1: field 'score' must be a finite number"),
        ("pairs.jsonl", '{"a": "x", "b": "y", "score": 1}\n{"a": "x", "score": 2}\n', ":2: field 'b' must be"),
        ("pairs.jsonl", '{"a": "x", "b": "y"}\n', ":1: field 'score' is None"),
        ("pairs.jsonl", "[1, 2]\n", ":1: expected an object"),
        ("pairs.jsonl", "{oops\n", ":1: not JSON"),
        ("pairs.csv", "g\tf\ty\t1\t2.0\tonly a\n", ":1: expected at least 7"),
    ],
)
def test_a_bad_line_is_named_with_its_field(tmp_path: Path, name: str, text: str, problem: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(GoldPairFormatError, match=f"^{path}{problem}"):
        read_gold_pairs(path)
