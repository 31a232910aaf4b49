"""Sentence pairs with human similarity scores, read from the files people have them in.

Formats, told apart by the file's name and first line:

* STS Benchmark ``.csv``: tab-separated, no header, no quoting; score in field 5, the sentences in
  fields 6 and 7;
* SICK ``.txt``: tab-separated with a header naming ``sentence_A``, ``sentence_B`` and
  ``relatedness_score``;
* ``.jsonl``: one ``{"a", "b", "score"}`` object per line;
* anything else: tab-separated ``a<TAB>b<TAB>score`` lines.

Every problem is a :class:`GoldPairFormatError` naming the file, line and field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GoldPair:
    """Two sentences and their human similarity score."""

    a: str
    b: str
    gold: float


class GoldPairFormatError(ValueError):
    """A line of a scored-pairs file could not be read; the message names the file, line and field."""


def read_gold_pairs(path: Path) -> list[GoldPair]:
    """Reads an STS Benchmark, SICK, JSONL or TSV file of scored pairs (see the module's docstring)."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if lines and lines[0].startswith("pair_ID\t"):
        return _read_sick(path, lines)
    if path.suffix == ".jsonl":
        return _read_jsonl(path, lines)
    if path.suffix == ".csv":
        return _read_stsb(path, lines)
    return _read_tsv(path, lines)


def _read_stsb(path: Path, lines: list[str]) -> list[GoldPair]:
    pairs = []
    for number, line in enumerate(lines, start=1):
        fields = line.split("\t")
        if len(fields) < 7:
            raise GoldPairFormatError(f"{path}:{number}: expected at least 7 tab-separated fields, got {len(fields)}")
        pairs.append(GoldPair(fields[5], fields[6], _score(fields[4], path, number)))
    return pairs


def _read_sick(path: Path, lines: list[str]) -> list[GoldPair]:
    header = lines[0].split("\t")
    try:
        a, b, score = header.index("sentence_A"), header.index("sentence_B"), header.index("relatedness_score")
    except ValueError as error:
        raise GoldPairFormatError(f"{path}:1: SICK header lacks sentence_A, sentence_B or relatedness_score") from error
    pairs = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) < len(header):
            raise GoldPairFormatError(f"{path}:{number}: expected {len(header)} fields, got {len(fields)}")
        pairs.append(GoldPair(fields[a], fields[b], _score(fields[score], path, number)))
    return pairs


def _read_tsv(path: Path, lines: list[str]) -> list[GoldPair]:
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise GoldPairFormatError(
                f"{path}:{number}: expected 3 tab-separated fields (a, b, score), got {len(fields)}"
            )
        pairs.append(GoldPair(fields[0], fields[1], _score(fields[2], path, number)))
    return pairs


def _read_jsonl(path: Path, lines: list[str]) -> list[GoldPair]:
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise GoldPairFormatError(f"{path}:{number}: not JSON ({error.msg})") from error
        if not isinstance(row, dict):
            raise GoldPairFormatError(f"{path}:{number}: expected an object with a, b and score")
        for field in ("a", "b"):
            if not isinstance(row.get(field), str) or not row[field].strip():
                raise GoldPairFormatError(f"{path}:{number}: field {field!r} must be a non-empty string")
        pairs.append(GoldPair(row["a"], row["b"], _score(row.get("score"), path, number)))
    return pairs


def _score(value: object, path: Path, number: int) -> float:
    try:
        score = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as error:
        raise GoldPairFormatError(f"{path}:{number}: field 'score' is {value!r}, not a number") from error
    if score != score or score in (float("inf"), float("-inf")):
        raise GoldPairFormatError(f"{path}:{number}: field 'score' must be a finite number")
    return score
