"""Input rows of bulk jobs: TSV, JSONL or Parquet, each row with its line number, bad rows named.

Every job reads its inputs through :func:`read_rows`: a row comes with its 1-based line number
(the physical line in TSV and JSONL, where blank lines are not rows; the row number in Parquet)
and either its checked values or the problem that makes it unusable, so that the runner can stop
at it naming the line, or skip and count it. Which columns a job needs, and how they are checked,
is a :class:`RowKind`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index.kb import numbered_lines
from models.linking.limits import LinkLimits, query_problem
from models.linking.query import AUTO, LinkQuery

TEXT_SUFFIXES = (".tsv", ".txt")
JSONL_SUFFIXES = (".jsonl", ".json")
PARQUET_SUFFIXES = (".parquet",)


class RowError(ValueError):
    """Why one row cannot be used; the message names the field."""


@dataclass(frozen=True)
class Row:
    """One input row: its line number, and its values (JSON text of a dict) or the problem with it."""

    line: int
    values: str = ""
    problem: str = ""


@dataclass(frozen=True)
class RowKind:
    """The columns a job reads: ``text_columns`` are a TSV line's tab-separated fields (one column
    takes the whole line), and ``check`` turns a row's raw values into the job's values or raises
    :class:`RowError`."""

    text_columns: tuple[str, ...]
    check: Callable[[dict[str, Any]], dict[str, Any]]


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise RowError(f'"{key}" must be a string, got {type(value).__name__ if key in row else "nothing"}')
    if not value.strip():
        raise RowError(f'"{key}" is empty')
    return value


def _check_pair(row: dict[str, Any]) -> dict[str, Any]:
    return {"a": _text(row, "a"), "b": _text(row, "b")}


def _check_text(row: dict[str, Any]) -> dict[str, Any]:
    return {"text": _text(row, "text")}


def _whole_number(row: dict[str, Any], key: str, default: int | None, least: int) -> int:
    """``row[key]`` (``default`` when absent or null), which must be an int of at least ``least``."""
    value = row.get(key)
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise RowError(f'"{key}" must be a whole number of at least {least}, got {value!r}')
    return value


LINK_FIELDS = {"text", "task", "mention", "top_k", "num_beams", "several", "candidates"}


def _typed_link_fields(row: dict[str, Any]) -> dict[str, Any]:
    """A link row's fields with the types ``/link-entity``'s schema gives them, defaults filled in
    (``num_beams`` defaults to at least ``top_k``)."""
    if unknown := sorted(set(row) - LINK_FIELDS):
        raise RowError(f"unknown field(s) {', '.join(map(repr, unknown))}; a row takes {sorted(LINK_FIELDS)}")
    typed: dict[str, Any] = {"text": _text(row, "text"), "task": row.get("task") or "entity"}
    if typed["task"] not in ("entity", "kbqa"):
        raise RowError(f'"task" must be "entity" or "kbqa", got {typed["task"]!r}')
    typed["top_k"] = _whole_number(row, "top_k", 5, 1)
    typed["num_beams"] = _whole_number(row, "num_beams", max(5, typed["top_k"]), 1)
    if row.get("mention") is not None:
        mention = row["mention"]
        if not isinstance(mention, dict):
            raise RowError('"mention" must be an object {"start": ..., "end": ...}')
        typed["mention"] = [_whole_number(mention, "start", None, 0), _whole_number(mention, "end", None, 1)]
    typed["several"] = row.get("several", False)
    if not isinstance(typed["several"], bool):
        raise RowError(f'"several" must be true or false, got {typed["several"]!r}')
    if row.get("candidates") is not None:
        typed["candidates"] = _candidates(row["candidates"])
    return typed


def _candidates(candidates: Any) -> str | list[str]:
    """``"auto"`` or a non-empty list of entity ids (whether the ids are in the index is the engine's
    to say)."""
    if candidates == AUTO:
        return candidates
    if not isinstance(candidates, list) or not candidates:
        raise RowError(f'"candidates" must be "auto" or a non-empty list of entity ids, got {candidates!r}')
    if not all(isinstance(entity_id, str) and entity_id for entity_id in candidates):
        raise RowError('"candidates" must hold entity ids (non-empty strings)')
    return candidates


def link_texts(limits: LinkLimits) -> RowKind:
    """Texts to link: one per line, or objects with the fields of ``/link-entity``: ``{"text",
    "task"?, "mention"?, "top_k"?, "num_beams"?, "several"?, "candidates"?}``, each refused as the
    server refuses such a request under ``limits`` (:func:`~models.linking.limits.query_problem`)."""

    def check(row: dict[str, Any]) -> dict[str, Any]:
        typed = _typed_link_fields(row)
        if problem := query_problem(LinkQuery(**typed), limits):
            raise RowError(str(problem))
        return typed

    return RowKind(("text",), check)


PAIRS = RowKind(("a", "b"), _check_pair)
"""``a<TAB>b`` lines, or ``{"a": ..., "b": ...}`` objects, or Parquet columns ``a`` and ``b``."""
TEXTS = RowKind(("text",), _check_text)
"""One text per line, or ``{"text": ...}`` objects, or a Parquet column ``text``."""


def _raw_rows(path: Path, kind: RowKind) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """``(line, raw dict)``, or ``(line, problem)`` for a line that cannot be read as a row."""
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        yield from _parquet_rows(path)
        return
    if suffix not in TEXT_SUFFIXES + JSONL_SUFFIXES:
        raise ValueError(f"{path}: unknown input format {suffix!r}; use .tsv, .txt, .jsonl or .parquet")
    for line, text in numbered_lines(path):
        if type(text) is not str:  # a line that is not UTF-8 comes back as its problem
            yield line, str(text)
        elif suffix in JSONL_SUFFIXES:
            yield line, _json_object(text)
        else:
            yield line, _tsv_fields(text, kind.text_columns)


def _json_object(text: str) -> dict[str, Any] | str:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as error:
        return f"invalid JSON ({error.msg})"
    return row if isinstance(row, dict) else "expected a JSON object"


def _tsv_fields(text: str, columns: tuple[str, ...]) -> dict[str, Any] | str:
    if len(columns) == 1:
        return {columns[0]: text}
    fields = text.split("\t")
    if len(fields) != len(columns):
        return f"expected {len(columns)} tab-separated fields ({', '.join(columns)}), got {len(fields)}"
    return dict(zip(columns, fields, strict=True))


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        import pyarrow.parquet as parquet
    except ImportError as error:
        raise ValueError("reading Parquet needs pyarrow: pip install 'simlink[ray]' or pyarrow") from error
    line = 0
    for batch in parquet.ParquetFile(path).iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            line += 1
            yield line, row


def read_rows(path: Path, kind: RowKind, after_line: int = 0) -> Iterator[Row]:
    """The rows of ``path`` after line ``after_line`` (0: all), checked as ``kind`` says.

    Raises ``ValueError`` for a file whose format is unknown; a bad row is a :class:`Row` with its
    problem, never an exception, so the caller decides whether to stop or skip.
    """
    for line, raw in _raw_rows(path, kind):
        if line <= after_line:
            continue
        if isinstance(raw, str):
            yield Row(line, problem=raw)
            continue
        try:
            yield Row(line, values=json.dumps(kind.check(raw), ensure_ascii=False))
        except RowError as error:
            yield Row(line, problem=str(error))


def read_texts(path: Path) -> tuple[list[int], list[str]]:
    """Every text of a corpus file (see :data:`TEXTS`) and its line; the first bad row raises
    ``ValueError`` naming it."""
    lines, texts = [], []
    for row in read_rows(path, TEXTS):
        if row.problem:
            raise ValueError(f"{path}:{row.line}: {row.problem}")
        lines.append(row.line)
        texts.append(json.loads(row.values)["text"])
    if not texts:
        raise ValueError(f"{path}: no texts")
    return lines, texts
